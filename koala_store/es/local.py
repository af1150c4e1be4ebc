"""A real, local Elasticsearch for development and tests: fetched from Maven Central, cached,
run single-node on 127.0.0.1.

By default security is off (plain HTTP, no users); `secure=True` turns it on (see secure.py).

Maven Central publishes Elasticsearch's `integ-test-zip` distribution up to 8.19.x and no
9.x build at all, so this runs the newest 8.x (with the 8.x Python client). Elasticsearch
refuses to run as root; as root it is started as the unprivileged user `nobody`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from base64 import b64encode
from pathlib import Path

import orjson

from .errors import ElasticsearchSetupError
from .secure import make_certificates, make_secure_home

ES_VERSION = "8.19.21"
ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
DEFAULT_PORT = 9200
DEFAULT_HEAP = "512m"  # enough for tests and demos; a 2-core box has no use for more
MIN_JAVA = 21
NOBODY = 65534
# Secure mode: the `elastic` user's password, made at random for each instance, lives in
# this file of the instance folder, readable by the user who started it only.
PASSWORD_FILE = "elastic-password"


def default_home() -> Path:
    """Where distributions and instances live: $KOALA_ES_HOME, else a cache folder that the
    unprivileged user can reach when we run as root (root's home is closed to it)."""
    if os.environ.get("KOALA_ES_HOME"):
        return Path(os.environ["KOALA_ES_HOME"])
    if os.geteuid() == 0:
        return Path("/var/tmp/koala-store/elasticsearch")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "koala-store" / "elasticsearch"


def java_version(java: Path) -> int | None:
    try:
        done = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> Path:
    """A JDK >= 21: $ES_JAVA_HOME if set, else the newest under /usr/lib/jvm, else $JAVA_HOME."""
    if os.environ.get("ES_JAVA_HOME"):
        home = Path(os.environ["ES_JAVA_HOME"])
        version = java_version(home / "bin" / "java")
        if version is None or version < MIN_JAVA:
            raise ElasticsearchSetupError(
                f"ES_JAVA_HOME={home} is not a Java {MIN_JAVA}+ JDK (found {version or 'no java'}); point it at a JDK {MIN_JAVA} or newer"
            )
        return home
    candidates = []
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(p for p in jvm.iterdir() if (p / "bin" / "java").exists())
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    found = [(v, home) for home in candidates if (v := java_version(home / "bin" / "java")) and v >= MIN_JAVA]
    if not found:
        raise ElasticsearchSetupError(
            f"Elasticsearch needs Java {MIN_JAVA} or newer and none was found in /usr/lib/jvm or $JAVA_HOME; "
            f"install one (e.g. apt install openjdk-{MIN_JAVA}-jdk-headless) or set ES_JAVA_HOME"
        )
    return max(found)[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _get_json(url: str, timeout: float = 5, *, context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> dict | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout, context=context) as reply:
            return orjson.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


class LocalElasticsearch:
    """One local single-node instance per port, with its own config, data and logs."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        *,
        home: Path | None = None,
        heap: str = DEFAULT_HEAP,
        version: str = ES_VERSION,
        secure: bool = False,
        password: str | None = None,
    ):
        self.port = port
        self.home = home or default_home()
        self.heap = heap
        self.version = version
        self.distribution = self.home / f"elasticsearch-{version}"
        self.secure_home = self.home / f"elasticsearch-{version}-secure"
        self.instance = self.home / "instances" / str(port)
        self.pid_file = self.instance / "tmp" / "es.pid"
        self.secure = secure
        # Data of its own: the security index's analyzer needs the plugin only secure mode has,
        # so plain mode could not open it (red cluster), and secure mode starts without users.
        self.data = self.instance / ("data-secure" if secure else "data")
        self.url = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
        # Secure mode: the `elastic` user's password and the CA that signed the HTTP certificate.
        self.user = "elastic" if secure else None
        self.password_file = self.instance / PASSWORD_FILE if secure else None
        self._password = password
        self.tls = self.instance / "tls"
        self.ca_cert = self.tls / "ca.pem" if secure else None

    @property
    def password(self) -> str | None:
        """The `elastic` user's password (secure mode): the one given, else the instance's
        (None before its first start, or for a user who may not read it)."""
        if not self.secure:
            return None
        if self._password is None and self.password_file is not None:
            try:
                self._password = self.password_file.read_text().strip() or None
            except OSError:
                return None
        return self._password

    def _make_password(self) -> None:
        """A random password for a new instance, in a file only its owner may read."""
        assert self.password_file is not None
        if self.password is not None:
            return
        self.instance.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        handle = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write(password + "\n")
        self._password = password

    def _close_folders(self) -> None:
        """Recorded data is nobody else's business: the instance's folders are 0700."""
        self.instance.chmod(0o700)
        for sub in ("config", self.data.name, "logs", "tmp", "tls"):
            path = self.instance / sub
            if path.is_dir():
                path.chmod(0o700)

    # --- fetching ----------------------------------------------------------------------

    def fetch(self) -> Path:
        """Download (with Maven, from Maven Central) and unpack the distribution, once."""
        if (self.distribution / "bin" / "elasticsearch").exists():
            return self.distribution
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ElasticsearchSetupError(
                f"Maven (mvn) is needed to fetch Elasticsearch {self.version} from Maven Central; install it (e.g. apt install maven)"
            )
        download = self.home / "download"
        download.mkdir(parents=True, exist_ok=True)
        artifact = ARTIFACT.replace(ES_VERSION, self.version)
        done = subprocess.run(
            [mvn, "-q", "-B", "-C", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={download}"],
            capture_output=True,
            text=True,
            cwd=download,
        )
        archive = download / f"elasticsearch-{self.version}.zip"
        if done.returncode != 0 or not archive.exists():
            raise ElasticsearchSetupError(f"Maven could not fetch {artifact}: {(done.stdout + done.stderr).strip()[-600:]}")
        unpacking = self.home / f".unpacking-{os.getpid()}"
        shutil.rmtree(unpacking, ignore_errors=True)
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                path = Path(zipped.extract(member, unpacking))
                mode = member.external_attr >> 16
                if mode:
                    path.chmod(mode & 0o7777)
        shutil.rmtree(self.distribution, ignore_errors=True)
        (unpacking / f"elasticsearch-{self.version}").rename(self.distribution)
        shutil.rmtree(unpacking, ignore_errors=True)
        archive.unlink()
        return self.distribution

    # --- running -----------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def _get(self, path: str, timeout: float) -> dict | None:
        if not self.secure:
            return _get_json(f"{self.url}{path}", timeout)
        assert self.ca_cert is not None
        try:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
        except OSError:
            return None  # no CA yet: never started in secure mode
        token = b64encode(f"{self.user}:{self.password}".encode()).decode()
        return _get_json(f"{self.url}{path}", timeout, context=context, headers={"Authorization": f"Basic {token}"})

    def health(self) -> dict | None:
        return self._get("/_cluster/health", timeout=2)

    def status(self) -> dict:
        pid = self.pid()
        health = self.health() if pid else None
        return {
            "running": bool(pid and health),
            "pid": pid,
            "url": self.url,
            "version": self.version,
            "health": (health or {}).get("status"),
            "home": str(self.instance),
        }

    def _write_config(self) -> Path:
        config = self.instance / "config"
        # A fresh config each start: a first start as root would otherwise switch security
        # on by itself and rewrite the file.
        shutil.rmtree(config, ignore_errors=True)
        shutil.copytree(self.distribution / "config", config)
        settings = {
            "cluster.name": f"koala-local-{self.port}",
            "node.name": "koala-local",
            "path.data": str(self.data),
            "path.logs": str(self.instance / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": "9300-9399" if self.port == DEFAULT_PORT else f"{self.port + 100}-{self.port + 199}",
            "discovery.type": "single-node",
            **(self._security_settings() if self.secure else {"xpack.security.enabled": "false"}),
            # A full development disk must not turn indices read-only mid-test.
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }
        (config / "elasticsearch.yml").write_text("".join(f"{k}: {v}\n" for k, v in settings.items()))
        if self.secure:
            # Elasticsearch reads only files under its config folder.
            (config / "certs").mkdir()
            for name in ("ca.pem", "node.pem", "node.key"):
                shutil.copy(self.tls / name, config / "certs" / name)
        return config

    def _security_settings(self) -> dict[str, str]:
        """Security on, HTTPS on the HTTP layer. Being explicit also stops the first start from
        auto-configuring security itself (enrollment, random password, its own CA)."""
        tls = {"certificate": "certs/node.pem", "key": "certs/node.key"}
        return {
            "xpack.security.enabled": "true",
            **{f"xpack.security.http.ssl.{k}": v for k, v in {"enabled": "true", **tls}.items()},
            # A single node on loopback would run without it (only a bootstrap-check warning),
            # but it is what security asks for and passes that check if it is ever enforced.
            **{
                f"xpack.security.transport.ssl.{k}": v
                for k, v in {"enabled": "true", **tls, "certificate_authorities": "certs/ca.pem", "verification_mode": "certificate"}.items()
            },
        }

    def _write_keystore(self, es_home: Path, command_prefix: list[str], env: dict[str, str]) -> None:
        """The `elastic` user's password: `bootstrap.password` in the keystore is its password
        until someone changes it through the API (it is a fresh keystore each start)."""
        assert self.password is not None
        done = subprocess.run(
            [*command_prefix, str(es_home / "bin" / "elasticsearch-keystore"), "add", "-x", "-f", "-s", "bootstrap.password"],
            input=self.password,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ElasticsearchSetupError(f"could not set the elastic user's password in the keystore: {(done.stdout + done.stderr).strip()[-600:]}")

    def start(self, timeout: float = 180) -> str:
        """Start (or find running) and wait until the cluster answers healthy; return its URL."""
        if self.pid() and self.health():
            return self.url
        if not port_is_free(self.port):
            raise ElasticsearchSetupError(f"port {self.port} on 127.0.0.1 is taken by another process; stop it or pass --port")
        java_home = find_java()
        self.fetch()
        es_home = self.distribution
        if self.secure:
            es_home = make_secure_home(self.distribution, self.secure_home, java_home, self.version)
            make_certificates(self.tls)
            self._make_password()
        config = self._write_config()
        for sub in (self.data.name, "logs", "tmp"):
            (self.instance / sub).mkdir(parents=True, exist_ok=True)
        self._close_folders()
        self.pid_file.unlink(missing_ok=True)
        env = {
            **os.environ,
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(config),
            "ES_TMPDIR": str(self.instance / "tmp"),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "HOME": str(self.instance / "tmp"),
        }
        as_es_user: list[str] = []
        if os.geteuid() == 0:
            # Elasticsearch will not run as root: hand its folders to `nobody` and drop to it
            # (the folders above may be passed through, not listed; the instance is its own).
            self.home.chmod(0o755)
            (self.home / "instances").chmod(0o711)
            os.chown(self.instance, NOBODY, NOBODY)
            for sub in ("config", self.data.name, "logs", "tmp"):
                for root, dirs, files in os.walk(self.instance / sub):
                    os.chown(root, NOBODY, NOBODY)
                    for name in files + dirs:
                        os.lchown(os.path.join(root, name), NOBODY, NOBODY)
            as_es_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
        if self.secure:
            self._write_keystore(es_home, as_es_user, env)  # as the user Elasticsearch runs as: it owns the keystore
        command = [*as_es_user, str(es_home / "bin" / "elasticsearch"), "-d", "-p", str(self.pid_file)]
        console_log = self.instance / "console.log"
        with console_log.open("wb") as out:
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        if done.returncode != 0:
            raise ElasticsearchSetupError(f"Elasticsearch did not start: {console_log.read_text()[-1500:]}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = self._get("/_cluster/health?wait_for_status=yellow&timeout=1s", timeout=3)
            if health and health.get("status") in ("green", "yellow"):
                return self.url
            if self.pid_file.exists() and self.pid() is None:
                break
            time.sleep(0.5)
        logs = sorted((self.instance / "logs").glob("*.log"))
        tail = logs[-1].read_text()[-1500:] if logs else console_log.read_text()[-1500:]
        if self.secure:  # the keystore's bootstrap.password no longer applies once it was changed
            tail += f" (secure mode: is the elastic user's password still the one in {self.password_file}? delete {self.data} to start over)"
        raise ElasticsearchSetupError(f"Elasticsearch on port {self.port} did not become healthy within {timeout:.0f} s: {tail}")

    def stop(self, timeout: float = 60) -> bool:
        """Stop the instance; return whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                break
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True
