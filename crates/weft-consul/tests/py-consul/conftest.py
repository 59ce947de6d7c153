"""Points py-consul's own tests at a fresh weft controller per test (weft's Consul API)."""
import os, socket, subprocess, tempfile, time, shutil
import pytest

WEFT = os.environ["WEFT_BIN"]
PORT = 8500
VERSION = "1.22.0"

def _wait(port, proc, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"weft server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("weft server did not listen")

@pytest.fixture
def consul_port():
    data = tempfile.mkdtemp(prefix="weft-pyconsul-")
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([WEFT, "server", "--listen", "127.0.0.1:0", "--data-dir", data,
                             "--consul-listen", f"127.0.0.1:{PORT}", "--consul-anonymous-tenant", "default"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(PORT, proc)
        yield PORT, VERSION
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill(); proc.wait()
        log.close()
        shutil.rmtree(data, ignore_errors=True)
