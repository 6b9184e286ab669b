package org.elasticsearch.plugins;

import org.elasticsearch.common.settings.Settings;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * A PluginsService that instantiates plugin classes found on the application classpath instead of
 * scanning path.home/modules and path.home/plugins for plugin bundles.
 *
 * <p>Lives in org.elasticsearch.plugins because {@code LoadedPlugin}, {@code loadPlugin} and
 * {@code loadExtensions} are package-private (split package: classpath only, never the module path).
 * Checked with javap against elasticsearch 9.5.3.
 */
public final class ClasspathPluginsService extends PluginsService {
    private final List<LoadedPlugin> classpathPlugins;

    public ClasspathPluginsService(Settings settings, PluginsLoader emptyLoader, Collection<Class<? extends Plugin>> pluginClasses) {
        // The loader is empty (no modules, no plugin bundles), so the superclass loads nothing itself.
        super(settings, null, emptyLoader);
        ClassLoader loader = ClasspathPluginsService.class.getClassLoader();
        List<LoadedPlugin> loaded = new ArrayList<>(pluginClasses.size());
        for (Class<? extends Plugin> cls : pluginClasses) {
            PluginDescriptor descriptor = new PluginDescriptor(
                cls.getSimpleName(),           // name
                "classpath plugin " + cls.getName(), // description
                "NA",                          // version
                org.elasticsearch.Build.current().version(), // elasticsearchVersion
                "21",                          // javaVersion
                cls.getName(),                 // classname
                null,                          // moduleName (not modular)
                List.of(),                     // extendedPlugins
                false,                         // hasNativeController
                false,                         // isLicensed
                false,                         // isModular
                false,                         // isStable
                PluginDescriptor.DeploymentTarget.ALL
            );
            Plugin instance = loadPlugin(cls, settings, null);
            loaded.add(new LoadedPlugin(descriptor, instance, loader));
        }
        loadExtensions(loaded);
        this.classpathPlugins = List.copyOf(loaded);
    }

    @Override
    protected List<LoadedPlugin> plugins() {
        return classpathPlugins;
    }
}
