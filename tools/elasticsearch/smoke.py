#!/usr/bin/env python3
"""Smoke test for the local Elasticsearch node (tools/elasticsearch/es).

Usage: python smoke.py [URL]        (default URL: http://127.0.0.1:9200)

Needs the official client: pip install 'elasticsearch>=9,<10'.
Prints each check as it passes; exits 1 on the first failure. It creates and deletes its own
index template and index (civicsoc-smoke-*), so it is safe to run against a dev node.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import date, timedelta

try:
    from elasticsearch import ConflictError, Elasticsearch, helpers
except ImportError:  # pragma: no cover - message for humans
    sys.exit("smoke.py: the 'elasticsearch' package is missing: pip install 'elasticsearch>=9,<10'")

N_DOCS = 100_000
TEMPLATE = "civicsoc-smoke-template"
CATEGORIES = [f"cat-{i}" for i in range(10)]
TITLE_VARIANTS = ["Civic Society", "CIVIC SOCIETY", "civic society"]
START_DAY = date(2024, 1, 1)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def step(msg: str, t0: float) -> None:
    print(f"ok   {msg} ({time.monotonic() - t0:.2f}s)", flush=True)


def gen_docs(index: str):
    for i in range(N_DOCS):
        yield {
            "_index": index,
            "_id": str(i),
            "_source": {
                # every 10th doc has a mixed-case "Civic Society" title, others a unique one
                "title": TITLE_VARIANTS[(i // 10) % 3] if i % 10 == 0 else f"Document {i}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "created": (START_DAY + timedelta(days=i % 366)).isoformat(),  # 2024 is a leap year
                "n": i,
            },
        }


def run(url: str) -> None:
    es = Elasticsearch(url, request_timeout=120)
    index = f"civicsoc-smoke-{uuid.uuid4().hex[:8]}"

    t0 = time.monotonic()
    info = es.info()
    major = int(info["version"]["number"].split(".")[0])
    check(major >= 9, f"expected Elasticsearch >= 9, got {info['version']['number']}")
    for key in ("name", "cluster_name", "cluster_uuid", "tagline"):
        check(key in info, f"info() lacks {key}")
    check(es.ping(), "ping() (HEAD /) returned False")
    step(f"info(): {info['cluster_name']} / Elasticsearch {info['version']['number']} "
         f"(lucene {info['version']['lucene_version']}); ping() true; X-Elastic-Product accepted", t0)

    try:
        t0 = time.monotonic()
        es.indices.put_index_template(
            name=TEMPLATE,
            index_patterns=["civicsoc-smoke-*"],
            priority=500,
            template={
                "settings": {
                    "number_of_shards": 1,
                    "number_of_replicas": 0,
                    "analysis": {"normalizer": {"lc": {"type": "custom", "filter": ["lowercase"]}}},
                },
                "mappings": {
                    "properties": {
                        "title": {"type": "text", "fields": {"norm": {"type": "keyword", "normalizer": "lc"}}},
                        "category": {"type": "keyword"},
                        "created": {"type": "date"},
                        "n": {"type": "long"},
                    }
                },
            },
        )
        check(es.indices.exists_index_template(name=TEMPLATE).body, "template not found after put")
        step("indices.put_index_template (composable, lowercase normalizer on keyword sub-field)", t0)

        t0 = time.monotonic()
        ok, _errors = helpers.bulk(es, gen_docs(index), chunk_size=2000, raise_on_error=True)
        check(ok == N_DOCS, f"bulk indexed {ok} of {N_DOCS}")
        es.indices.refresh(index=index)
        count = es.count(index=index)["count"]
        check(count == N_DOCS, f"count {count} != {N_DOCS}")
        mapping = es.indices.get_mapping(index=index)[index]["mappings"]
        check(mapping["properties"]["title"]["fields"]["norm"].get("normalizer") == "lc",
              "template mapping not applied to the new index")
        step(f"helpers.bulk of {N_DOCS} docs into {index}, template applied, count == {count}", t0)

        t0 = time.monotonic()
        expected = N_DOCS // 10
        r = es.search(index=index, query={"term": {"title.norm": "cIvIc SoCiEtY"}}, track_total_hits=True, size=0)
        hits = r["hits"]["total"]["value"]
        check(hits == expected, f"term query on normalized sub-field: {hits} hits, expected {expected}")
        step(f"term query on title.norm (query term normalized too): {hits} hits", t0)

        t0 = time.monotonic()
        r = es.search(
            index=index,
            size=0,
            aggs={
                "by_cat": {"terms": {"field": "category", "size": 20}},
                "by_month": {"date_histogram": {"field": "created", "calendar_interval": "month"}},
            },
        )
        buckets = r["aggregations"]["by_cat"]["buckets"]
        check(len(buckets) == 10 and all(b["doc_count"] == N_DOCS // 10 for b in buckets),
              f"terms agg buckets wrong: {buckets}")
        months = r["aggregations"]["by_month"]["buckets"]
        check(len(months) == 12, f"date_histogram: {len(months)} buckets, expected 12")
        check(sum(b["doc_count"] for b in months) == N_DOCS, "date_histogram doc counts do not add up")
        step(f"terms agg ({len(buckets)} buckets) and date_histogram ({len(months)} monthly buckets)", t0)

        t0 = time.monotonic()
        pit = es.open_point_in_time(index=index, keep_alive="1m")["id"]
        seen: set[str] = set()
        search_after = None
        pages = 0
        while True:
            body = {
                "size": 1000,
                "query": {"term": {"category": "cat-3"}},
                "pit": {"id": pit, "keep_alive": "1m"},
                "sort": [{"n": "asc"}, {"_shard_doc": "asc"}],
            }
            if search_after is not None:
                body["search_after"] = search_after
            r = es.search(**body)
            page = r["hits"]["hits"]
            if not page:
                break
            pages += 1
            pit = r["pit_id"]
            seen.update(h["_id"] for h in page)
            search_after = page[-1]["sort"]
        es.close_point_in_time(id=pit)
        check(len(seen) == N_DOCS // 10, f"PIT paging saw {len(seen)} docs, expected {N_DOCS // 10}")
        step(f"open_point_in_time + search_after: {len(seen)} docs in {pages} pages, PIT closed", t0)

        t0 = time.monotonic()
        r1 = es.index(index=index, id="occ", document={"title": "v1", "n": -1}, refresh=True)
        r2 = es.index(index=index, id="occ", document={"title": "v2", "n": -2},
                      if_seq_no=r1["_seq_no"], if_primary_term=r1["_primary_term"])
        check(r2["result"] == "updated", f"conditional write with current seq_no failed: {r2}")
        try:
            es.index(index=index, id="occ", document={"title": "v3", "n": -3},
                     if_seq_no=r1["_seq_no"], if_primary_term=r1["_primary_term"])
        except ConflictError as e:
            check(e.meta.status == 409, f"expected 409, got {e.meta.status}")
        else:
            raise AssertionError("stale if_seq_no/if_primary_term write did not conflict")
        step("if_seq_no/if_primary_term: current -> updated, stale -> 409 version_conflict", t0)
    finally:
        t0 = time.monotonic()
        es.options(ignore_status=404).indices.delete(index=index)
        es.options(ignore_status=404).indices.delete_index_template(name=TEMPLATE)

    check(not es.indices.exists(index=index).body, "index still exists after delete")
    step(f"indices.delete({index}) and template removed", t0)


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9200"
    print(f"smoke test against {url}", flush=True)
    t_all = time.monotonic()
    try:
        run(url)
    except Exception as e:
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"all checks passed in {time.monotonic() - t_all:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
