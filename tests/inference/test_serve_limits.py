"""The real ``serve`` (nginx -> gunicorn -> Flask) under careless or hostile clients: the work one request may
ask for, memory after a large answer, what nginx and gunicorn answer themselves, who may reach gunicorn,
what a broken model directory tells a client, slow clients, and a start with no temporary directory.

Servers are started as tests/inference/test_serve.py starts them, and every process they start ends.
"""
import http.client
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from inference import contracts, nginx_config
from inference.local import SERVE, free_port, stop
from inference.processes import descendants
from tests.inference.test_serve import (
    HTTP_TIMEOUT,
    JSONLINES,
    MB,
    emf_lines,
    kill_all,
    log_tail,
    running_server,
    server_processes,
    wait_until,
)

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # one that user nobody may run (this environment's may lie in root's home)


@pytest.fixture(scope="module")
def nginx_binary() -> Path:
    try:
        return nginx_config.find_nginx()
    except nginx_config.NginxNotFound as error:
        if os.geteuid() != 0:
            pytest.skip(f"{error}; this user is not root, so `make setup` could not install it")
        raise


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_limits_log") / "serve.log"


@pytest.fixture(scope="module")
def server(model_dir, nginx_binary, server_log):
    with running_server(model_dir, server_log) as running:
        yield running


@pytest.fixture(scope="module")
def items(model_dir) -> list[str]:
    return json.loads((model_dir / "items.json").read_text())


def run_dir(server) -> Path:
    """The server's run directory: where gunicorn's socket lies (its master's MODEL_SERVER_SOCKET)."""
    (master,) = server_processes(server.process.pid)["gunicorn"]
    environment = dict(entry.split("=", 1) for entry in
                       Path(f"/proc/{master}/environ").read_text().split("\0") if "=" in entry)
    return Path(environment["MODEL_SERVER_SOCKET"]).parent


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (the peak resident size since the last reset) from /proc/<pid>/status."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    """Start VmHWM afresh at the current resident size (Linux: ``5`` written to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def raw_exchange(port: int, request: bytes) -> http.client.HTTPResponse:
    """Send ``request`` byte for byte on a new connection; nginx's answer, read whole."""
    connection = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
    connection.sendall(request)
    response = http.client.HTTPResponse(connection)
    response.begin()
    response.body = response.read()
    connection.close()
    return response


# -- 1. the work one request may ask for -----------------------------------------------------------------

@pytest.mark.slow
def test_asking_for_more_recommendations_than_the_bound_is_413_naming_it(server, items):
    """101 sessions at k 1000 (101,000 > 100,000); 10,001 JSON lines at k 1000 (10,001,000 > 10,000,000)."""
    body = {"sessions": [{"items": items[:2]}] * 101, "k": 1000}
    response = requests.post(f"{server.url}/invocations", json=body, timeout=HTTP_TIMEOUT)
    assert response.status_code == 413
    assert "101,000 recommendations (sessions x k)" in response.json()["error"]
    assert f"{contracts.MAX_JSON_RECOMMENDATIONS:,}" in response.json()["error"]
    line = json.dumps({"items": items[:2], "k": 1000}).encode() + b"\n"
    response = requests.post(f"{server.url}/invocations", data=line * 10_001, headers=JSONLINES, timeout=HTTP_TIMEOUT)
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert "10,001,000 recommendations (records x k)" in response.json()["error"]
    assert f"{contracts.MAX_JSON_LINES_RECOMMENDATIONS:,}" in response.json()["error"]


LARGE_LINES = 10_000  # at k 1000: the JSON-lines bound exactly


@pytest.mark.slow
def test_a_large_json_lines_answer_is_streamed_and_the_worker_gives_its_memory_back(server, server_log, items):
    """10,000 lines at k 1000, the bound exactly: every line answered, in order, with every item of the catalogue.

    The answer (tens of MB) is written a chunk at a time, so the worker that scored it never held it whole:
    its peak resident size (VmHWM, reset before the request) rose by far less than the answer's size, and
    its resident size after is within a few MB of before.
    """
    workers = server_processes(server.process.pid)["gunicorn_workers"]
    for pid in workers:
        reset_peak(pid)
    before = {pid: memory_kib(pid) for pid in workers}
    body = b"".join(json.dumps({"session_id": n, "items": items[n % 50:n % 50 + 3], "k": 1000}).encode() + b"\n"
                    for n in range(LARGE_LINES))
    emf_before = len(emf_lines(server_log))
    lines, size = 0, 0
    with requests.post(f"{server.url}/invocations", data=body, headers=JSONLINES, timeout=HTTP_TIMEOUT,
                       stream=True) as response:
        assert response.status_code == 200
        for line in response.iter_lines(chunk_size=1 << 16):
            answer = json.loads(line)
            assert answer["session_id"] == lines and len(answer["recommendations"]) == len(items)
            lines += 1
            size += len(line) + 1
    assert lines == LARGE_LINES
    after = {pid: memory_kib(pid) for pid in workers}
    peak_rise_mib = max(after[pid]["VmHWM"] - before[pid]["VmRSS"] for pid in workers) / 1024
    rss_rise_mib = max(after[pid]["VmRSS"] - before[pid]["VmRSS"] for pid in workers) / 1024
    assert size > 40 * MB
    assert peak_rise_mib < size / MB / 2, f"peak rose {peak_rise_mib:.0f} MiB for a {size / MB:.0f} MiB answer"
    assert rss_rise_mib < 16, f"resident size rose {rss_rise_mib:.0f} MiB and stayed"
    (record,) = emf_lines(server_log)[emf_before:]  # one metrics line for the whole streamed request
    assert record["Sessions"] == LARGE_LINES and record["RequestItems"] == 3 * LARGE_LINES


# -- 3. nobody but serve's user reaches gunicorn -----------------------------------------------------------

CONNECT_AS_NOBODY = """
import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
"""


@pytest.mark.slow
def test_the_gunicorn_socket_is_its_owners_alone(server):
    """Run directory 0700 and socket without group or other bits, both serve's user's; nginx's worker runs as
    that user; another user (nobody) is refused when it tries to connect."""
    directory = run_dir(server)
    sockets = [path for path in directory.iterdir() if stat.S_ISSOCK(path.lstat().st_mode)]
    assert len(sockets) == 1
    for path in (directory, sockets[0]):
        info = path.lstat()
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0, f"{path} is mode {stat.S_IMODE(info.st_mode):o}"
        assert info.st_uid == os.geteuid()
    for pid in server_processes(server.process.pid)["nginx_workers"]:
        uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Uid:"))
        assert set(uids.split()[1:]) == {str(os.geteuid())}
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("connecting as another user needs root, and a Python that user may run")
    done = subprocess.run([SYSTEM_PYTHON, "-c", CONNECT_AS_NOBODY, str(sockets[0])], user=NOBODY, group=NOBODY,
                          capture_output=True, text=True, timeout=HTTP_TIMEOUT)
    assert done.returncode == 13, done.stderr


# -- 4. every answer is JSON, and says nosniff -----------------------------------------------------------

HOST = b"Host: localhost\r\nConnection: close\r\n"


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes, status", [
    (b"GET /ping HTTP/1.1\r\n" + HOST + b"\r\n", 200),
    (b"OPTIONS /invocations HTTP/1.1\r\n" + HOST + b"\r\n", 200),
    (b"TRACE /invocations HTTP/1.1\r\n" + HOST + b"\r\n", 405),
    (b"CONNECT / HTTP/1.1\r\n" + HOST + b"\r\n", 405),
    (b"NOT A REQUEST LINE\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\n" + HOST + b"X-Large: " + b"a" * 20_000 + b"\r\n\r\n", 400),
    (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    (b"GET /ping HTTP/9.9\r\n" + HOST + b"\r\n", 505),
    (b"GET /_errors/400 HTTP/1.1\r\n" + HOST + b"\r\n", 404),
    (b"POST /invocations HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    # a control character in a header value: nginx passes it on, gunicorn refuses it itself
    (b"GET /ping HTTP/1.1\r\n" + HOST + b"X-Odd: a\x01b\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
     b"Content-Length: 2\r\n\r\n{}", 415),
], ids=["ping", "options", "trace", "connect", "bad-request-line", "headers-too-large", "uri-too-long",
        "http-version", "internal-location", "transfer-coding", "gunicorn-invalid-header", "gzip-body"])
def test_every_answer_is_json_with_nosniff(server, request_bytes, status):
    response = raw_exchange(server.port, request_bytes)
    assert response.status == status, response.body
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    if response.body:
        document = json.loads(response.body)
        assert status == 200 or document["error"]
    if status == 405:
        assert "POST" in response.getheader("Allow")
    if status == 415:
        assert "'gzip'" in document["error"] and "identity" in document["error"]


# -- 6. what comes back is valid JSON: what strict readers refuse is refused ------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("body, fragment", [
    (b'{"items": ["\\ud800"]}', "lone UTF-16 surrogate"),
    (b'{"sessions": [{"session_id": "\\udc00x", "items": ["a"]}]}', "lone UTF-16 surrogate"),
    (b'{"sessions": [{"session_id": 9007199254740993, "items": ["a"]}]}', "send it as a string"),
    (b'{"items": ["a"], "k": 3, "k": 4}', "'k' twice"),
], ids=["lone-surrogate-item", "lone-surrogate-id", "id-beyond-2^53", "duplicate-key"])
def test_what_strict_json_readers_refuse_is_400(server, body, fragment):
    response = requests.post(f"{server.url}/invocations", data=body, headers={"Content-Type": "application/json"},
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == 400
    json.loads(response.content.decode("utf-8"))  # the answer is strict UTF-8 JSON
    assert fragment in response.json()["error"]


@pytest.mark.slow
def test_json_lines_with_an_unsafe_id_are_answered_by_line_number(server, items):
    body = (b'{"session_id": 9007199254740993, "items": ["a"]}\n{"session_id": "\\ud800", "items": ["a"]}\n'
            + json.dumps({"session_id": 9007199254740991, "items": items[:1]}).encode() + b"\n")
    response = requests.post(f"{server.url}/invocations", data=body, headers=JSONLINES, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    answers = [json.loads(line.decode("utf-8")) for line in response.content.splitlines()]
    assert [answer.get("line") for answer in answers[:2]] == [1, 2] and "error" in answers[0] and "error" in answers[1]
    assert answers[2]["session_id"] == 2 ** 53 - 1 and answers[2]["recommendations"]


# -- 5. a broken model directory: what, not where ---------------------------------------------------------

@contextmanager
def serve_answering(opt_ml: Path, log_path: Path):
    """``serve`` over ``opt_ml`` (one worker) until the app answers /ping, ready or not; yields its URL."""
    port = free_port()
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, PATH=path, OPT_ML_DIR=str(opt_ml), SAGEMAKER_BIND_TO_PORT=str(port),
               MODEL_SERVER_WORKERS="1")
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, log_tail(log_path)
        try:
            return requests.get(f"{url}/ping", timeout=2).status_code in (200, 503)  # from the app, not nginx's 502
        except requests.ConnectionError:
            return False

    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(SERVE)], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        seen: set[int] = set()
        try:
            wait_until(answers, HTTP_TIMEOUT, "the app answering /ping")
            seen.update(descendants(process.pid))
            yield url
        finally:
            seen.update(descendants(process.pid))
            stop(process)
            kill_all(seen)


@pytest.mark.slow
def test_a_broken_model_directory_is_503_saying_what_not_where(model_dir, nginx_binary, tmp_path):
    opt_ml = tmp_path / "opt_ml"
    shutil.copytree(model_dir, opt_ml / "model")
    (opt_ml / "model" / "scorer.onnx").write_bytes(b"not an onnx graph")
    log_path = tmp_path / "serve.log"
    with serve_answering(opt_ml, log_path) as url:
        answers = [requests.get(f"{url}/ping", timeout=HTTP_TIMEOUT),
                   requests.post(f"{url}/invocations", json={"items": ["a"]}, timeout=HTTP_TIMEOUT)]
    for response in answers:
        assert response.status_code == 503
        error = response.json()["error"]
        assert "scorer.onnx is not a usable ONNX model" in error
        assert str(tmp_path) not in error and "/" not in error.replace("scorer.onnx", "")
        assert "ONNXRuntimeError" not in error and "INVALID_PROTOBUF" not in error
    log = log_path.read_text(errors="replace")
    assert str(opt_ml / "model" / "scorer.onnx") in log and "INVALID_PROTOBUF" in log  # where, and the library's words


# -- 8. slow clients -------------------------------------------------------------------------------------

TRICKLERS = 4
HELD = 3 * MB


def body_files(pid: int, directory: Path) -> int:
    """Bytes in the client body files (request bodies waiting to be whole) nginx's worker ``pid`` holds open in
    the run directory. nginx removes each such file's name as it opens it, so they are found among its open files."""
    total = 0
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(descriptor).startswith(str(directory / "client_body")):
                total += descriptor.stat().st_size
        except FileNotFoundError:  # closed meanwhile
            continue
    return total


@pytest.mark.slow
def test_a_stalled_upload_is_held_on_disk_not_in_memory_and_cut_off(server):
    """Four clients announce 6 MiB bodies, send 3 MiB each and stall. nginx keeps what came in files of the run
    directory, not in its memory, and ends each connection once the client has been silent for its body timeout
    (nginx_config.CLIENT_TIMEOUT_S), removing the files."""
    (nginx_worker,) = server_processes(server.process.pid)["nginx_workers"]
    directory = run_dir(server)
    before_kib = memory_kib(nginx_worker)["VmRSS"]
    head = (b"POST /invocations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/jsonlines\r\n"
            b"Content-Length: " + str(6 * MB).encode() + b"\r\n\r\n")
    connections = []
    try:
        for _ in range(TRICKLERS):
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT)
            connection.sendall(head + b" " * HELD)
            connections.append(connection)
        wait_until(lambda: body_files(nginx_worker, directory) >= TRICKLERS * (HELD - MB), HTTP_TIMEOUT,
                   "nginx writing the bodies received so far to files")
        rise_mib = (memory_kib(nginx_worker)["VmRSS"] - before_kib) / 1024
        assert rise_mib < TRICKLERS * HELD / MB / 4, f"nginx's worker grew {rise_mib:.1f} MiB"
        for connection in connections:  # the server ends the connection: recv returns (an answer or nothing)
            connection.settimeout(6 * nginx_config.CLIENT_TIMEOUT_S)
            try:
                leftover = connection.recv(65536)
            except ConnectionResetError:
                leftover = b""
            assert leftover == b"" or leftover.startswith(b"HTTP/1.1 408")
        wait_until(lambda: body_files(nginx_worker, directory) == 0, HTTP_TIMEOUT,
                   "nginx removing the abandoned bodies")
    finally:
        for connection in connections:
            connection.close()
    assert requests.get(f"{server.url}/ping", timeout=HTTP_TIMEOUT).status_code == 200


# -- 7. no usable temporary directory --------------------------------------------------------------------

@pytest.mark.parametrize("unusable", ["missing", "a-file"])
def test_serve_without_a_usable_temporary_directory_exits_2_naming_it(nginx_binary, tmp_path, unusable):
    (tmp_path / "model").mkdir()
    tmpdir = tmp_path / unusable
    if unusable == "a-file":
        tmpdir.write_text("not a directory")
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "OPT_ML_DIR": str(tmp_path), "TMPDIR": str(tmpdir)}
    done = subprocess.run([str(SERVE)], env=env, capture_output=True, text=True, timeout=HTTP_TIMEOUT)
    assert done.returncode == 2
    assert f"TMPDIR={tmpdir}" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
