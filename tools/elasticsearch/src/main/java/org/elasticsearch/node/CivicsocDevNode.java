package org.elasticsearch.node;

import civicsoc.esnode.RootEndpointPlugin;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.plugins.ClasspathPluginsService;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.plugins.PluginsLoader;
import org.elasticsearch.plugins.PluginsService;
import org.elasticsearch.transport.netty4.Netty4Plugin;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Single embedded Elasticsearch node for civicsoc development and CI (started by tools/elasticsearch/es).
 *
 * <p>Must live in org.elasticsearch.node: NodeConstruction, NodeServiceProvider and Node(NodeConstruction)
 * are package-private. This is the same trick Elastic's own MockNode uses, minus the test framework.
 * No bootstrap checks, security manager or entitlements are involved in this start path.
 *
 * <p>Usage: java ... org.elasticsearch.node.CivicsocDevNode HOME_DIR
 * Environment: ES_PORT (HTTP, default 9200), ES_TRANSPORT_PORT (default ES_PORT+100),
 * ES_CLUSTER_NAME (default civicsoc-dev).
 */
public final class CivicsocDevNode {
    private static final List<Class<? extends Plugin>> PLUGINS = List.of(Netty4Plugin.class, RootEndpointPlugin.class);

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: CivicsocDevNode <home-dir>");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        for (String dir : List.of("config", "data", "logs", "plugins", "modules", "tmp")) {
            Files.createDirectories(home.resolve(dir));
        }
        int httpPort = intEnv("ES_PORT", 9200);
        int transportPort = intEnv("ES_TRANSPORT_PORT", httpPort + 100);

        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("cluster.name", envOr("ES_CLUSTER_NAME", "civicsoc-dev"))
            .put("node.name", "civicsoc-dev-1")
            .put("network.host", "127.0.0.1")
            .put("http.port", httpPort)
            .put("transport.port", transportPort)
            .put("discovery.type", "single-node")
            .put("transport.type", "netty4")
            .put("http.type", "netty4")
            .put("cluster.routing.allocation.disk.threshold_enabled", false) // dev disks are often >90% full
            .put("action.destructive_requires_name", false)                  // allow DELETE test-* / _all
            .put("indices.breaker.total.use_real_memory", false)             // avoid spurious 429s on a 1g heap
            .put("node.processors", 2)
            .build();

        // Must run before anything touches ES logging (otherwise LogManager.getLogger NPEs). Logs go to stdout,
        // which the es script redirects to es.log.
        LogConfigurator.configureWithoutConfig(Settings.builder().put("logger.level", envOr("ES_LOG_LEVEL", "INFO")).build());

        Environment env = new Environment(settings, home.resolve("config"));
        PluginsLoader emptyLoader = PluginsLoader.createPluginsLoader(Set.of(), Set.of(), Map.of(), false);
        NodeServiceProvider provider = new NodeServiceProvider() {
            @Override
            PluginsService newPluginService(Environment environment, PluginsLoader pluginsLoader) {
                return new ClasspathPluginsService(environment.settings(), pluginsLoader, PLUGINS);
            }
        };
        Node node = new Node(NodeConstruction.prepareConstruction(env, emptyLoader, provider, true));

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(15, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "civicsoc-es-shutdown"));

        node.start();
        System.out.println("civicsoc-es: node started, http://127.0.0.1:" + httpPort);
        stopped.await(); // keep the JVM alive until SIGTERM/SIGINT
    }

    private static String envOr(String name, String dflt) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? dflt : v;
    }

    private static int intEnv(String name, int dflt) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? dflt : Integer.parseInt(v.trim());
    }
}
