#!/usr/bin/env python3
"""`make demo`'s live part: the agent on a simulated BME680 for 20 s, its verdicts shipped to
Elasticsearch and read back from there.

With no ES_URL, an ES-API server (osmem-server from PyPI, the one the tests use) is installed
into target/osmem-venv, started on 127.0.0.1 on a free port and stopped at the end. With
ES_URL=https://... (and EDGE_AGENT_ES_USERNAME plus EDGE_AGENT_ES_PASSWORD, or
EDGE_AGENT_ES_API_KEY), the verdicts go to that cluster instead. Either way the agent also
writes them to target/demo-live.ndjson, and the demo ends by asking the server, not the
agent, what arrived.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "target"
AGENT = TARGET / "release" / "edge-agent"
OSMEM_VERSION = "0.1.6"  # as tests/src/osmem.rs pins it
INDEX = "edge-agent-demo"
RUN_SECONDS = 20


def say(text):
    print(text, flush=True)


def osmem_binary():
    venv = TARGET / "osmem-venv"
    found = list(venv.glob("lib/*/site-packages/osmem_server/bin/osmem-server"))
    if not found:
        say(f"installing osmem-server {OSMEM_VERSION} into {venv.relative_to(ROOT)} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
             f"osmem-server=={OSMEM_VERSION}"],
            check=True,
        )
        found = list(venv.glob("lib/*/site-packages/osmem_server/bin/osmem-server"))
    return found[0]


def start_osmem():
    server = subprocess.Popen(
        [str(osmem_binary()), "--addr", "127.0.0.1:0", "--no-ja", "--no-stdin-watch",
         "--parent-pid", str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    ready = json.loads(server.stdout.readline())
    return server, ready["url"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_header():
    key = os.environ.get("EDGE_AGENT_ES_API_KEY")
    if key:
        return {"Authorization": f"ApiKey {key}"}
    user = os.environ.get("EDGE_AGENT_ES_USERNAME")
    if user:
        token = b64encode(f"{user}:{os.environ.get('EDGE_AGENT_ES_PASSWORD', '')}".encode())
        return {"Authorization": f"Basic {token.decode()}"}
    return {}


def es(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **auth_header()}
    request = urllib.request.Request(f"{url}{path}", data=data, headers=headers,
                                     method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main():
    own_server = None
    url = os.environ.get("ES_URL", "").rstrip("/")
    if not url:
        own_server, url = start_osmem()
        say(f"Elasticsearch API: osmem-server on {url} (set ES_URL to use your cluster)")
    else:
        say(f"Elasticsearch: {url}")
    state = TARGET / "demo-state"
    shutil.rmtree(state, ignore_errors=True)
    output = TARGET / "demo-live.ndjson"
    output.unlink(missing_ok=True)
    metrics_port = free_port()
    config = TARGET / "demo-ship.toml"
    config.write_text(
        (ROOT / "demo" / "agent.toml").read_text()
        + f'\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n'
        + f'\n[elasticsearch]\nurl = "{url}"\nindex = "{INDEX}"\nbatch_max_delay_ms = 200\n'
        + (f'username = {json.dumps(os.environ["EDGE_AGENT_ES_USERNAME"])}\n'
           if os.environ.get("EDGE_AGENT_ES_USERNAME") else "")
    )
    agent = subprocess.Popen(
        [str(AGENT), "run", "--simulate", "--scenario", "cooking", "--speed", "3600",
         "--config", str(config), "--output", str(output)],
        cwd=ROOT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    try:
        # The demo's length, not a synchronisation: twenty simulated hours.
        time.sleep(RUN_SECONDS)
        agent.send_signal(signal.SIGINT)
        if agent.wait(timeout=30) != 0:
            sys.exit(f"the agent exited with {agent.returncode}")
    finally:
        if agent.poll() is None:
            agent.kill()

    try:
        es(url, f"/{INDEX}/_refresh", {})
    except urllib.error.URLError:
        pass
    total = es(url, f"/{INDEX}/_count")["count"]
    flagged = es(url, f"/{INDEX}/_count", {"query": {"term": {"is_anomaly": True}}})["count"]
    first = es(url, f"/{INDEX}/_search", {
        "size": 5, "sort": [{"@timestamp": "asc"}],
        "query": {"term": {"is_anomaly": True}},
        "_source": ["@timestamp", "air_quality", "function_sha256"],
    })["hits"]["hits"]
    local = sum(1 for _ in output.open()) if output.exists() else 0
    say(f"{total} documents in {INDEX} ({local} verdicts in {output.relative_to(ROOT)}), "
        f"{flagged} flagged")
    if local != total:
        # A clean stop ships what it judged (the shipper's last pass): every verdict of
        # the local copy is upstream, or the cluster refused some (their reason is logged).
        sys.exit(f"{local} verdicts judged but {total} documents upstream")
    say("the first flagged, read back from the server:")
    for hit in first:
        doc = hit["_source"]
        say(f"  {doc['@timestamp']}  air quality {doc['air_quality']:.1f}"
            f"  (function {doc['function_sha256'][:12]}…)")
    query = '{"query":{"term":{"is_anomaly":true}},"sort":[{"@timestamp":"asc"}]}'
    say(f"the query behind them: curl -s -H 'Content-Type: application/json' "
        f"'{url}/{INDEX}/_search?pretty' -d '{query}'")
    if own_server:
        own_server.terminate()
        own_server.wait(timeout=10)
        say("(osmem-server stopped; it keeps nothing: run `make demo` again for a fresh one)")
    else:
        say("Kibana: import deploy/kibana/edge-agent.ndjson (Stack Management → Saved Objects) "
            f"and point its data view at {INDEX}*; deploy/kibana/edge-fleet.ndjson shows the "
            "agents' status documents (index edge-fleet)")


if __name__ == "__main__":
    main()
