"""The machinery of `make vm-test`: a QEMU guest driven over ssh, the upstream on host
loopback, and the tally of checks. The checks themselves are in deploy/vm/vm-test.

Everything waits on a condition with a deadline (a line on the serial console, a port, a
state in systemctl, a count on the server), never on a fixed sleep; every process started
here is stopped by its pid.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def say(text):
    print(text, flush=True)


class CheckFailed(Exception):
    pass


def deadline_wait(what, condition, timeout, interval=0.5):
    """Polls `condition` until it returns something truthy; fails after `timeout` s."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = condition()
        except CheckFailed:
            raise
        except Exception as error:  # a poll that failed is "not yet"
            last = f"{type(error).__name__}: {error}"
            if time.monotonic() >= end:
                raise CheckFailed(f"{what}: not within {timeout:.0f} s (last: {last})")
            time.sleep(interval)
            continue
        if last:
            return last
        if time.monotonic() >= end:
            raise CheckFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


class Tally:
    """Each check prints one line: PASS/FAIL/GAP/NOT DONE, its name and its figure. GAP: a
    defect the VM shows that is reported, not fixed here; NOT DONE: a check the VM cannot
    make, with the reason."""

    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.not_done = 0
        self.gaps = 0  # defects the VM found and reported, not yet fixed (GAP lines)
        self.lines = []

    def record(self, verdict, name, detail):
        line = f"{verdict:8} {name}: {detail}"
        self.lines.append(line)
        say(line)
        if verdict == "PASS":
            self.passed += 1
        elif verdict == "FAIL":
            self.failed += 1
        elif verdict == "GAP":
            self.gaps += 1
        else:
            self.not_done += 1

    def check(self, name, ok, detail):
        self.record("PASS" if ok else "FAIL", name, detail)
        return ok

    def summary(self):
        extra = f", {self.gaps} known gaps (GAP)" if self.gaps else ""
        extra += f", {self.not_done} not done" if self.not_done else ""
        return f"{self.passed} passed, {self.failed} failed{extra}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """osmem-server (the tests' ES-API server, from PyPI) on 127.0.0.1 only; the guest
    reaches it as 10.0.2.2 (QEMU's user-mode alias for the host's loopback)."""

    def __init__(self, port=None):
        venv = ROOT / "target" / "osmem-venv"
        found = list(venv.glob("lib/*/site-packages/osmem_server/bin/osmem-server"))
        if not found:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet",
                            "--disable-pip-version-check", "osmem-server==0.1.6"], check=True)
            found = list(venv.glob("lib/*/site-packages/osmem_server/bin/osmem-server"))
        self.binary = found[0]
        self.port = port or free_port()
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [str(self.binary), "--addr", f"127.0.0.1:{self.port}", "--no-ja",
             "--no-stdin-watch", "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        ready = json.loads(self.process.stdout.readline())
        self.url = ready["url"]
        return self

    def stop(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def request(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data,
            headers={"Content-Type": "application/json"}, method="POST" if data else "GET")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def count(self, index, query=None):
        try:
            body = {"query": query} if query else None
            return self.request(f"/{index}/_count", body)["count"]
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return 0
            raise

    def docs(self, index, query=None, fields=None):
        """Every document of the index (or of the query), paged by _id."""
        out = []
        after = None
        while True:
            body = {"size": 5000, "sort": [{"_id": "asc"}],
                    "query": query or {"match_all": {}}}
            if fields is not None:
                body["_source"] = fields
            if after is not None:
                body["search_after"] = after
            try:
                hits = self.request(f"/{index}/_search", body)["hits"]["hits"]
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return out
                raise
            if not hits:
                return out
            out.extend(hits)
            after = hits[-1].get("sort") or [hits[-1]["_id"]]


class VM:
    """One Debian guest under qemu-system-aarch64 (TCG), its disk an overlay over the
    cached image that lives as long as this object: reboots and power cuts keep it."""

    def __init__(self, image_dir, work, name="arm64", memory_mib=1024, cpus=2):
        self.image_dir = Path(image_dir)
        self.work = Path(work)
        self.name = name
        self.memory_mib = memory_mib
        self.cpus = cpus
        self.key = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / \
            "edge-agent" / "vm" / "ssh" / "id_ed25519"
        self.disk = self.work / f"{name}.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        str(self.image_dir / "root.img"), str(self.disk)], check=True)
        self.process = None
        self.boots = 0
        self.serial = None

    # --- power -----------------------------------------------------------------------
    def boot(self, rtc_base=None, timeout=300):
        assert self.process is None
        self.boots += 1
        self.ssh_port = free_port()
        self.serial = self.work / f"{self.name}-serial-{self.boots}.log"
        self.control = self.work / f"{self.name}-{self.boots}.ssh"
        command = [
            "qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a53",
            "-smp", str(self.cpus), "-m", str(self.memory_mib),
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{self.serial}",
            "-kernel", str(self.image_dir / "vmlinuz"),
            "-initrd", str(self.image_dir / "initrd.img"),
            "-append", "root=/dev/vda rw console=ttyAMA0 quiet fsck.repair=yes "
                       "systemd.show_status=false",
            "-drive", f"file={self.disk},if=none,id=hd,format=qcow2,discard=unmap",
            "-device", "virtio-blk-device,drive=hd",
            "-netdev", f"user,id=net,hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22",
            "-device", "virtio-net-device,netdev=net",
            "-object", "rng-random,id=rng,filename=/dev/urandom",
            "-device", "virtio-rng-device,rng=rng",
        ]
        if rtc_base:
            command += ["-rtc", f"base={rtc_base},clock=host"]
        self.qemu_log = open(self.work / f"{self.name}-qemu-{self.boots}.log", "w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL,
                                        stdout=self.qemu_log, stderr=subprocess.STDOUT)

        def ready():
            if self.process.poll() is not None:
                raise CheckFailed(f"qemu exited ({self.process.returncode}) while booting; "
                                  f"see {self.serial}")
            return self.serial.exists() and "EDGE-VM-READY" in self.serial.read_text(
                errors="replace")

        deadline_wait(f"{self.name} boot {self.boots} (EDGE-VM-READY on the console)",
                      ready, timeout, interval=0.5)
        deadline_wait("ssh into the guest", lambda: self.sh("true", timeout=90,
                                                              check=False).returncode == 0,
                      300, interval=1)
        self.boot_seconds = time.monotonic() - self.started
        return self.boot_seconds

    def power_cut(self):
        """SIGKILL to QEMU: the guest's page cache and everything in flight are gone."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._closed()

    def wait_exit(self, timeout):
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"the guest did not power off within {timeout} s")
        self._closed()

    def reboot(self, timeout=300, rtc_base=None):
        self.sh("systemctl reboot", check=False, timeout=20)
        self.wait_exit(120)  # -no-reboot: QEMU exits at the guest's reboot
        return self.boot(rtc_base=rtc_base, timeout=timeout)

    def poweroff(self):
        if self.process is None:
            return
        self.sh("systemctl poweroff", check=False, timeout=20)
        try:
            self.wait_exit(120)
        except CheckFailed:
            self.kill()

    def kill(self):
        """Always at the end, whatever happened: the QEMU process by its pid."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process is not None:
            self._closed()

    def _closed(self):
        if self.control.exists():
            subprocess.run(self._ssh_base() + ["-O", "exit", "root@127.0.0.1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
        self.process = None
        self.qemu_log.close()

    # --- commands --------------------------------------------------------------------
    def _ssh_base(self):
        return ["ssh", "-i", str(self.key), "-p", str(self.ssh_port),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=60",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
                "-o", "ControlMaster=auto", "-o", f"ControlPath={self.control}",
                "-o", "ControlPersist=600"]

    def sh(self, script, timeout=300, check=True, input=None):
        """Runs a shell script in the guest as root; its output comes back as text."""
        try:
            result = subprocess.run(self._ssh_base() + ["root@127.0.0.1", script],
                                    input=input, capture_output=True, timeout=timeout,
                                    text=not isinstance(input, bytes))
        except subprocess.TimeoutExpired:
            raise CheckFailed(f"guest command timed out after {timeout} s: {script[:200]}")
        if isinstance(result.stdout, bytes):
            result.stdout = result.stdout.decode(errors="replace")
            result.stderr = result.stderr.decode(errors="replace")
        if check and result.returncode != 0:
            raise CheckFailed(f"guest command failed ({result.returncode}): {script[:200]}\n"
                              f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result

    def out(self, script, timeout=300):
        return self.sh(script, timeout=timeout).stdout.strip()

    def put(self, path, data, mode="644"):
        if isinstance(path, Path):
            path = str(path)
        data = data if isinstance(data, bytes) else data.encode()
        self.sh(f"install -D -m {mode} /dev/stdin {path}", input=data, timeout=120)

    def show(self, unit, *props):
        text = self.out(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
