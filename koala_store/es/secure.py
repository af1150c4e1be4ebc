"""Secure mode of the local Elasticsearch: security on, HTTPS with a certificate from a
throwaway CA, the `elastic` superuser with a random password of its own, so that auth and TLS options are
tested for real.

The security index (where API keys, native users and role mappings live) is created with an
`email` analyzer built from the analysis-common module's `uax_url_email` tokenizer and
`pattern_capture` and `unique` filters, and integ-test-zip has no analysis-common: without
them creating an API key fails. Secure mode therefore runs from a hard-linked copy of the
distribution with one tiny plugin, compiled here with the JDK's javac, that registers those
three on top of the Lucene jar Elasticsearch already ships. The plain distribution stays as
it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from .errors import ElasticsearchSetupError

SHIM_PLUGIN = "koala-security-index-analysis"
SHIM_CLASS = "koala.local.SecurityIndexAnalysis"
SHIM_SOURCE = Path(__file__).with_name("SecurityIndexAnalysis.java")


def make_secure_home(distribution: Path, target: Path, java_home: Path, version: str) -> Path:
    """The distribution plus the shim plugin (see the module docstring), built once."""
    plugin = target / "plugins" / SHIM_PLUGIN
    if (plugin / "plugin-descriptor.properties").exists():
        return target
    javac = java_home / "bin" / "javac"
    if not javac.exists():
        raise ElasticsearchSetupError(f"secure mode compiles a small plugin and {java_home} has no javac; point ES_JAVA_HOME at a full JDK (one with javac)")
    building = target.with_name(f".{target.name}-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)

    def link(source: str, dest: str) -> None:
        try:
            os.link(source, dest)  # no copy of 120 MB: the same files, another plugins folder
        except OSError:
            shutil.copy2(source, dest)

    shutil.copytree(distribution, building, copy_function=link)
    source = building / "shim" / "src" / "koala" / "local" / "SecurityIndexAnalysis.java"
    source.parent.mkdir(parents=True)
    source.write_text(SHIM_SOURCE.read_text())
    classes = building / "shim" / "classes"
    done = subprocess.run(
        [str(javac), "--release", "17", "-nowarn", "-cp", str(distribution / "lib" / "*"), "-d", str(classes), str(source)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ElasticsearchSetupError(f"could not compile the security index analysis plugin: {(done.stdout + done.stderr).strip()[-1000:]}")
    plugin = building / "plugins" / SHIM_PLUGIN
    plugin.mkdir(parents=True)
    with zipfile.ZipFile(plugin / f"{SHIM_PLUGIN}.jar", "w") as jar:
        for file in sorted(classes.rglob("*.class")):
            jar.write(file, file.relative_to(classes).as_posix())
    descriptor = {
        "description": "analysis-common's uax_url_email, pattern_capture and unique, for the security index",
        "version": version,
        "name": SHIM_PLUGIN,
        "classname": SHIM_CLASS,
        "java.version": "17",
        "elasticsearch.version": version,
    }
    (plugin / "plugin-descriptor.properties").write_text("".join(f"{k}={v}\n" for k, v in descriptor.items()))
    shutil.rmtree(building / "shim")
    for path in [plugin, *plugin.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    if not (target / "plugins" / SHIM_PLUGIN / "plugin-descriptor.properties").exists():
        shutil.rmtree(target, ignore_errors=True)  # a half-built one
    try:
        building.rename(target)
    except OSError:  # another process built it meanwhile: keep theirs
        shutil.rmtree(building, ignore_errors=True)
    return target


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ElasticsearchSetupError(f"openssl {args[0]} failed making the local CA: {done.stderr.strip()[-600:]}")


def make_certificates(folder: Path) -> None:
    """A throwaway CA (ca.pem) and a certificate for 127.0.0.1/localhost signed by it
    (node.pem, node.key), once per instance so clients can keep trusting the same CA."""
    if (folder / "node.pem").exists():
        return
    if shutil.which("openssl") is None:
        raise ElasticsearchSetupError("secure mode makes its certificates with the openssl CLI; install it (e.g. apt install openssl)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # the CA's key is in it
    days = "3650"
    _openssl(*f"req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days {days}".split(), "-subj", "/CN=koala-store local CA", cwd=folder)
    _openssl(*"req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=127.0.0.1".split(), cwd=folder)
    # Clients check the address they dial against subjectAltName, not the CN.
    (folder / "node.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(*f"x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days {days} -extfile node.ext -out node.pem.new".split(), cwd=folder)
    (folder / "node.pem.new").rename(folder / "node.pem")  # last: its presence means all are there
    (folder / "ca.pem").chmod(0o644)


