"""The container's ``serve`` for real: nginx and gunicorn processes, HTTP on a localhost port, the app
of ``inference.wsgi`` scoring a small trained model with ONNX Runtime.

One server answers the ordinary requests; the tests that stop or kill processes start their own.
Every test that starts a server ends every process it started, whatever happens.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import requests

from inference import nginx_config, request_metrics
from inference.local import LocalServer, free_port, stop, wait_for_ping
from inference.processes import children, command_line, descendants
from inference.server_settings import ServerSettings, SettingsError
from model_code import artifacts
from tests.conftest import MODEL_VERSION

SERVE = Path(__file__).resolve().parents[2] / "inference" / "serve"
WORKERS = 2
HTTP_TIMEOUT = 60
MB = 1024 * 1024


# -- processes -------------------------------------------------------------------------------------------

def alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie may wait for a reaper that never comes in a sandbox)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_all(pids) -> None:
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def server_processes(serve_pid: int) -> dict[str, list[int]]:
    """serve's children by role: the gunicorn master and its workers, the nginx master and its workers."""
    roles = {"gunicorn": [], "gunicorn_workers": [], "nginx": [], "nginx_workers": []}
    for child in children(serve_pid):
        name = "gunicorn" if "gunicorn" in command_line(child) else "nginx"
        roles[name].append(child)
        roles[f"{name}_workers"] += children(child)
    return roles


@pytest.fixture(scope="module")
def nginx_binary() -> Path:
    try:
        return nginx_config.find_nginx()
    except nginx_config.NginxNotFound as error:
        if os.geteuid() != 0:
            pytest.skip(f"{error}; this user is not root, so `make setup` could not install it")
        raise


@contextmanager
def running_server(model_dir: Path, log_path: Path):
    """``inference/serve`` (2 workers) on a free port, ping answered; every process it started ends after."""
    seen: set[int] = set()
    with open(log_path, "ab") as log:  # append: nginx opens /dev/stdout itself and appends to it
        server = LocalServer(model_dir, workers=WORKERS, log=log)
        try:
            with server:
                try:
                    yield server
                finally:
                    seen.update(descendants(server.process.pid))
        finally:
            if server.process is not None:
                kill_all(seen | {server.process.pid})


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve_log") / "serve.log"


METRICS_SERVICE = "gru4rec-test"


@pytest.fixture(scope="module")
def server(model_dir, nginx_binary, server_log):
    with pytest.MonkeyPatch.context() as env:
        env.setenv(request_metrics.SERVICE_VARIABLE, METRICS_SERVICE)
        with running_server(model_dir, server_log) as running:
            yield running


# -- reference answers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def items(model_dir) -> list[str]:
    return artifacts.read_items(model_dir)


def reference_top_k(model_dir: Path, items: list[str], session: list[str], k: int) -> list[tuple[str, float]]:
    """Top-k straight from scorer.onnx and the output layer, without the serving code."""
    index = {item: i for i, item in enumerate(items)}
    sequence = np.array([[index[item] for item in session]], dtype=np.int32)
    scorer = onnxruntime.InferenceSession(str(model_dir / artifacts.SCORER_FILE), providers=["CPUExecutionProvider"])
    hidden = scorer.run([artifacts.SCORER_OUTPUT], {"items": sequence,
                                                   "lengths": np.array([len(session)], dtype=np.int32)})[0]
    embeddings, bias = artifacts.read_output_layer(model_dir)
    scores = hidden[0] @ embeddings.T + bias
    top = np.argsort(-scores, kind="stable")[:k]
    return [(items[i], float(scores[i])) for i in top]


def jsonlines_body(sessions: int, items: list[str], k: int) -> bytes:
    lines = [json.dumps({"session_id": f"s{n}", "items": [items[(n + j) % len(items)] for j in range(8)], "k": k})
             for n in range(sessions)]
    return ("\n".join(lines) + "\n").encode()


JSONLINES = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}


# -- the ordinary requests, on one server ----------------------------------------------------------------

@pytest.mark.slow
def test_ping_answers_200(server):
    response = requests.get(f"{server.url}/ping", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200


@pytest.mark.slow
def test_every_worker_warms_up_before_taking_requests(server, server_log):
    """gunicorn.conf.py's post_worker_init has each worker load the model through the app's /ping."""
    def warm_workers() -> int:
        return server_log.read_text().count("warmed up before taking requests: /ping 200 OK")

    wait_until(lambda: warm_workers() == WORKERS, timeout=HTTP_TIMEOUT, what=f"{WORKERS} workers warming up")


@pytest.mark.slow
def test_workers_run_numpy_on_one_thread_each(server):
    """One worker per core: each worker's OpenBLAS gets one thread, so workers do not oversubscribe the cores."""
    workers = server_processes(server.process.pid)["gunicorn_workers"]
    assert len(workers) == WORKERS
    for pid in workers:
        environment = dict(entry.split("=", 1) for entry in
                           Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
        assert environment["OPENBLAS_NUM_THREADS"] == "1"


def mapped_files(pid: int) -> set[str]:
    """The files mapped into process ``pid``'s memory."""
    fields = (line.split(maxsplit=5) for line in Path(f"/proc/{pid}/maps").read_text().splitlines())
    return {entry[5].strip() for entry in fields if len(entry) == 6 and entry[5].startswith("/")}


@pytest.mark.slow
def test_workers_share_the_item_table_through_one_mapped_file(server, model_dir):
    """Each worker maps item_embeddings.npy (the page cache holds it once) instead of reading a private copy."""
    table = str((model_dir / artifacts.EMBEDDINGS_FILE).resolve())
    workers = server_processes(server.process.pid)["gunicorn_workers"]
    assert len(workers) == WORKERS
    wait_until(lambda: all(table in mapped_files(pid) for pid in workers), timeout=HTTP_TIMEOUT,
               what="every worker mapping the item table")  # a worker loads the model as it starts
    assert table not in mapped_files(server_processes(server.process.pid)["gunicorn"][0])  # loaded after the fork


@pytest.mark.slow
def test_json_request_gets_the_models_top_k(server, model_dir, items):
    session = [items[3], items[7], items[3], items[11]]
    response = requests.post(f"{server.url}/invocations", json={"items": session, "k": 5}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = reference_top_k(model_dir, items, session, 5)
    assert [r["item_id"] for r in answer["recommendations"]] == [item for item, _ in expected]
    assert [r["score"] for r in answer["recommendations"]] == pytest.approx(
        [s for _, s in expected], rel=1e-3, abs=1e-3
    )
    assert answer["unknown_items"] == 0
    assert answer["model_version"] == MODEL_VERSION


@pytest.mark.slow
def test_an_empty_session_gets_the_popular_items_through_nginx(server, model_dir):
    """A home-page visitor ({"items": []}) gets 200 and the metadata's popular items, marked fallback."""
    popular = json.loads((model_dir / "metadata.json").read_text())["popular_items"]
    response = requests.post(f"{server.url}/invocations", json={"items": [], "k": 3}, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    assert response.json() == {"recommendations": [{"item_id": item, "score": 0.0} for item in popular[:3]],
                               "unknown_items": 0, "fallback": True, "model_version": MODEL_VERSION}


@pytest.mark.slow
def test_jsonlines_bad_line_answered_in_place(server, items):
    lines = [
        json.dumps({"session_id": "first", "items": [items[0], items[1]], "k": 3}),
        json.dumps({"session_id": "broken", "items": "not a list"}),
        "{this is not json",
        json.dumps({"session_id": "last", "items": [items[2]], "k": 4}),
    ]
    response = requests.post(f"{server.url}/invocations", data="\n".join(lines) + "\n", headers=JSONLINES,
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    out = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert len(out) == len(lines)
    assert [line.get("session_id") for line in out[:2]] == ["first", "broken"]
    assert out[3]["session_id"] == "last"
    assert len(out[0]["recommendations"]) == 3 and "error" not in out[0]
    assert "error" in out[1] and "recommendations" not in out[1]
    assert "error" in out[2] and "recommendations" not in out[2]
    assert len(out[3]["recommendations"]) == 4 and "error" not in out[3]
    # each line, as Batch Transform writes it to the scored file, names the model
    assert [line["model_version"] for line in out] == [MODEL_VERSION] * len(lines)


def emf_lines(log_path: Path) -> list[dict]:
    """The server log's lines that are whole JSON objects carrying CloudWatch's ``_aws`` metadata."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            found.append(record)
    return found


def metrics_of(record: dict) -> dict[str, float]:
    """The metric values an EMF record declares, read the way CloudWatch reads them: each declared name at the top
    level."""
    (directive,) = record["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "GRU4Rec"
    assert directive["Dimensions"] == [["Service"]]
    return {metric["Name"]: record[metric["Name"]] for metric in directive["Metrics"]}


@pytest.mark.slow
def test_each_request_writes_one_emf_line_with_its_item_counts(server, server_log, items):
    """Two sessions, 9 ids of which 4 the model never saw: the line written for this request says so."""
    unknown = ["never-seen-a", "never-seen-b", "never-seen-c", "never-seen-d"]
    body = {"sessions": [{"session_id": "m1", "items": [items[0], unknown[0], items[1], unknown[1], items[2]]},
                         {"session_id": "m2", "items": [unknown[2], items[3], unknown[3], items[4]]}]}
    before = len(emf_lines(server_log))
    response = requests.post(f"{server.url}/invocations", json=body, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    assert sum(result["unknown_items"] for result in response.json()["results"]) == 4
    new = emf_lines(server_log)[before:]
    assert len(new) == 1, new
    assert metrics_of(new[0]) == {"Sessions": 2, "RequestItems": 9, "UnknownItems": 4,
                                  "UnknownItemShare": pytest.approx(4 / 9)}
    assert new[0]["Service"] == METRICS_SERVICE
    assert new[0]["ModelVersion"] == MODEL_VERSION


@pytest.mark.slow
def test_a_jsonlines_request_counts_its_scored_lines_only(server, server_log, items):
    """Three good lines (one all unknown) and a bad one: one EMF line for the request, the bad line not counted."""
    lines = [json.dumps({"session_id": "a", "items": [items[5], items[6]]}),
             json.dumps({"session_id": "b", "items": ["nobody-knows-1", "nobody-knows-2", "nobody-knows-3"]}),
             json.dumps({"session_id": "c", "items": 42}),
             json.dumps({"session_id": "d", "items": [items[7]]})]
    before = len(emf_lines(server_log))
    response = requests.post(f"{server.url}/invocations", data="\n".join(lines) + "\n", headers=JSONLINES,
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    new = emf_lines(server_log)[before:]
    assert len(new) == 1, new
    assert metrics_of(new[0]) == {"Sessions": 3, "RequestItems": 6, "UnknownItems": 3,
                                  "UnknownItemShare": pytest.approx(0.5)}


@pytest.mark.slow
def test_execution_parameters_report_the_workers(server):
    response = requests.get(f"{server.url}/execution-parameters", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"MaxConcurrentTransforms": WORKERS, "BatchStrategy": "MULTI_RECORD",
                               "MaxPayloadInMB": 6}


@pytest.mark.slow
@pytest.mark.parametrize("body, content_type, status", [
    (b'{"items": ["a"]}', "text/csv", 415),
    (b'{"items": ["a"', "application/json", 400),
])
def test_client_mistakes_get_4xx_json(server, body, content_type, status):
    response = requests.post(f"{server.url}/invocations", data=body, headers={"Content-Type": content_type},
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == status
    assert response.json()["error"]


NGINX_413 = "payload too large: the limit is 6291456 bytes (6 MB)"  # inference/nginx.conf's own answer


@pytest.mark.slow
def test_oversize_bodies_are_413_json_from_nginx_never_502(server, items):
    """Bodies from one byte over 6 MiB to 9 MiB, 30 of them: nginx refuses each itself with its JSON 413 (before
    gunicorn sees a byte, so no connection is reset and no 502 comes back); a body of exactly 6 MiB is read."""
    line = json.dumps({"session_id": "s", "items": items[:8]}).encode() + b"\n"
    limit = 6 * MB
    statuses, errors = [], set()
    for size in np.linspace(limit + 1, 9 * MB, 30).astype(int):
        body = line * (size // len(line)) + b" " * (size % len(line))
        assert len(body) == size
        response = requests.post(f"{server.url}/invocations", data=body, headers=JSONLINES, timeout=HTTP_TIMEOUT)
        statuses.append(response.status_code)
        assert response.headers["Content-Type"].startswith("application/json")
        errors.add(response.json()["error"])
    assert statuses == [413] * 30 and errors == {NGINX_413}
    at_limit = json.dumps({"items": items[:2]}).encode()
    at_limit += b" " * (limit - len(at_limit))
    response = requests.post(f"{server.url}/invocations", data=at_limit, headers={"Content-Type": "application/json"},
                             timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text


@pytest.mark.slow
def test_unknown_path_is_404_json(server):
    response = requests.get(f"{server.url}/metrics", timeout=HTTP_TIMEOUT)
    assert response.status_code == 404
    assert "/invocations" in response.json()["error"]


# -- stopping and killing, each on a server of its own ---------------------------------------------------

def listening_sockets(port: int) -> list[list[str]]:
    """The rows of /proc/net/tcp and tcp6 for sockets listening (state 0A) on TCP ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        found += [fields for fields in map(str.split, rows)
                  if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port]
    return found


def accept_queue_length(port: int) -> int:
    """Connections the kernel completed on the listening ``port`` that nginx has not yet accepted.

    For a listening socket, the rx_queue column of /proc/net/tcp is its accept backlog.
    """
    return sum(int(fields[4].split(":")[1], 16) for fields in listening_sockets(port))


@contextmanager
def held(pids: list[int]):
    """The processes ``pids`` stopped (SIGSTOP) inside the block and continued (SIGCONT) on leaving it."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGCONT)


REQUESTS = 20


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_lets_in_flight_requests_finish(model_dir, nginx_binary, items, tmp_path, stop_signal):
    """20 requests for 2 workers, all accepted by nginx and none answered when the signal comes: all
    finish with 200, serve exits 0 and leaves no process behind.

    No request can finish early, however fast or slow the machine: the test holds gunicorn's workers
    (SIGSTOP) while it sends the requests, waits until nginx has accepted every one, signals serve, and
    lets the workers go on (SIGCONT) only once nginx has closed its port, i.e. once the drain has begun.
    (A connection the kernel completed but nginx had not yet accepted would be refused when nginx closes
    its port, as on any server: hence the wait for an empty accept queue.)
    """
    body = jsonlines_body(20, items, k=20)
    statuses: list[object] = [None] * REQUESTS
    line_counts: list[int] = [0] * REQUESTS
    sent = [threading.Event() for _ in range(REQUESTS)]
    log_path = tmp_path / "serve.log"
    with running_server(model_dir, log_path) as server:
        def call(n: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=4 * HTTP_TIMEOUT)
            try:
                connection.request("POST", "/invocations", body=body, headers=JSONLINES)
                sent[n].set()
                response = connection.getresponse()
                statuses[n], line_counts[n] = response.status, len(response.read().splitlines())
            except OSError as error:
                statuses[n] = repr(error)
            finally:
                sent[n].set()
                connection.close()

        pids = descendants(server.process.pid)
        threads = [threading.Thread(target=call, args=(n,)) for n in range(REQUESTS)]
        with held(server_processes(server.process.pid)["gunicorn_workers"]):
            for thread in threads:
                thread.start()
            assert all(event.wait(HTTP_TIMEOUT) for event in sent)
            wait_until(lambda: accept_queue_length(server.port) == 0, HTTP_TIMEOUT, "nginx accepting every request")
            in_flight = statuses.count(None)
            server.process.send_signal(stop_signal)
            wait_until(lambda: not listening_sockets(server.port), HTTP_TIMEOUT, "nginx closing its port")
        for thread in threads:
            thread.join(4 * HTTP_TIMEOUT)
        exit_code = server.process.wait(HTTP_TIMEOUT)
    assert in_flight == REQUESTS, f"answered before the signal: {statuses}"
    assert statuses == [200] * REQUESTS, log_tail(log_path)
    assert line_counts == [20] * REQUESTS
    assert exit_code == 0, log_tail(log_path)
    assert [pid for pid in pids if alive(pid)] == []
    assert len(pids) >= 2 + WORKERS + 1  # the two masters, gunicorn's workers, nginx's worker


@pytest.mark.slow
def test_killed_worker_is_replaced(model_dir, nginx_binary, items, tmp_path):
    log_path = tmp_path / "serve.log"
    with running_server(model_dir, log_path) as server:
        before = server_processes(server.process.pid)
        victim = before["gunicorn_workers"][0]

        def requests_succeed() -> None:
            for n in range(2 * WORKERS):
                response = requests.post(f"{server.url}/invocations", json={"items": [items[n]], "k": 3},
                                         timeout=HTTP_TIMEOUT)
                assert response.status_code == 200, log_tail(log_path)

        def replaced() -> bool:
            workers = server_processes(server.process.pid)["gunicorn_workers"]
            return len([pid for pid in workers if alive(pid)]) == WORKERS and victim not in workers

        os.kill(victim, signal.SIGKILL)
        requests_succeed()  # the other worker answers meanwhile
        wait_until(replaced, what="gunicorn replacing the killed worker")
        requests_succeed()
        after = server_processes(server.process.pid)
        assert server.process.poll() is None
        assert after["gunicorn"] == before["gunicorn"] and after["nginx"] == before["nginx"]
    assert server.exit_code == 0


@pytest.mark.slow
@pytest.mark.parametrize("dying, survivor", [("nginx", "gunicorn"), ("gunicorn", "nginx")])
def test_a_server_dying_stops_the_other(model_dir, nginx_binary, tmp_path, dying, survivor):
    log_path = tmp_path / "serve.log"
    with running_server(model_dir, log_path) as server:
        processes = server_processes(server.process.pid)
        all_pids = [pid for pids in processes.values() for pid in pids]
        os.kill(processes[dying][0], signal.SIGKILL)
        exit_code = server.process.wait(HTTP_TIMEOUT)
        left = [pid for pid in all_pids if alive(pid)]
    assert exit_code == 1, log_tail(log_path)
    assert left == [], f"still running: {[command_line(pid) for pid in left]}"
    log = log_path.read_text()
    assert f"{dying} exited on its own" in log
    assert "drain timed out" not in log, f"{survivor} was not stopped by the drain:\n{log_tail(log_path)}"


@pytest.mark.slow
def test_local_server_moves_off_a_port_taken_before_nginx_binds_it(model_dir, nginx_binary, tmp_path):
    server = LocalServer(model_dir, workers=1)
    taken = server.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with server:
            assert server.port != taken
            assert requests.get(f"{server.url}/ping", timeout=HTTP_TIMEOUT).status_code == 200
    assert server.exit_code == 0


# -- before anything starts ------------------------------------------------------------------------------

def serve_env(env_changes: dict[str, str]) -> dict[str, str]:
    """This environment with this interpreter's bin folder first on PATH (serve's gunicorn), and the changes."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **env_changes}


def run_serve(env_changes: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SERVE), *flags], env=serve_env(env_changes), capture_output=True, text=True,
                          timeout=HTTP_TIMEOUT)


def test_help_prints_the_flags_and_starts_nothing(tmp_path):
    """--help answers even where nothing could start (no model directory at all)."""
    done = run_serve({"OPT_ML_DIR": str(tmp_path)}, "--help")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("usage: serve") and "--model-dir" in done.stdout and "--port" in done.stdout


@pytest.mark.parametrize("flags, named", [(["--port", "0"], "'0'"), (["--port", "http"], "'http'"),
                                          (["--model-dir"], "--model-dir"), (["--workers", "2"], "--workers")])
def test_bad_flags_are_named(tmp_path, flags, named):
    done = run_serve({"OPT_ML_DIR": str(tmp_path)}, *flags)
    assert done.returncode == 2 and named in done.stderr and "usage: serve" in done.stderr


def test_a_missing_model_dir_flag_is_named(tmp_path):
    done = run_serve({"OPT_ML_DIR": str(tmp_path)}, "--model-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert str(tmp_path / "nowhere") in done.stderr and "--model-dir" in done.stderr


@pytest.mark.slow
def test_model_dir_and_port_flags_serve_that_model_on_that_port(model_dir, nginx_binary, tmp_path):
    """No OPT_ML_DIR to build: an empty one stands beside the flags, which win over the variables."""
    port = free_port()
    env = serve_env({"OPT_ML_DIR": str(tmp_path), "SAGEMAKER_BIND_TO_PORT": "1", "MODEL_SERVER_WORKERS": "1"})
    process = subprocess.Popen([str(SERVE), "--model-dir", str(model_dir), "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_ping(f"http://127.0.0.1:{port}", process)
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json={"items": [], "k": 2},
                                 timeout=HTTP_TIMEOUT)
    finally:
        exit_code = stop(process)
    assert response.status_code == 200 and response.json()["model_version"] == MODEL_VERSION
    assert exit_code == 0


def test_bad_setting_named_before_anything_starts(tmp_path):
    done = run_serve({"OPT_ML_DIR": str(tmp_path), "MODEL_SERVER_WORKERS": "two"})
    assert done.returncode == 2
    assert "MODEL_SERVER_WORKERS" in done.stderr and "'two'" in done.stderr


def test_missing_model_directory_named(tmp_path):
    done = run_serve({"OPT_ML_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert str(tmp_path / "model") in done.stderr


def test_missing_nginx_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nginx_config, "FALLBACK_BINARY", tmp_path / "nginx")
    with pytest.raises(nginx_config.NginxNotFound, match="apt-get install nginx"):
        nginx_config.find_nginx()


def test_settings_defaults_and_limits():
    settings = ServerSettings.from_env({"OPT_ML_DIR": "relative/ml"})
    assert (settings.port, settings.timeout, settings.graceful_timeout) == (8080, 60, 25)
    assert settings.workers == len(os.sched_getaffinity(0))
    assert settings.model_dir == Path("relative/ml/model").absolute()
    assert settings.proxy_timeout > settings.timeout
    for name, value in [("SAGEMAKER_BIND_TO_PORT", "70000"), ("MODEL_SERVER_TIMEOUT", "0"),
                        ("MODEL_SERVER_WORKERS", "1.5")]:
        with pytest.raises(SettingsError, match=name):
            ServerSettings.from_env({name: value})


def test_nginx_config_has_every_placeholder_filled(tmp_path):
    path = nginx_config.write_config(tmp_path, port=8123, socket=tmp_path / "g.sock", proxy_timeout=70,
                                     shutdown_timeout=25, payload_limit=4 * MB)
    text = path.read_text()
    assert nginx_config.PLACEHOLDER.search(text) is None
    assert "listen 8123;" in text and f"unix:{tmp_path / 'g.sock'}" in text and "proxy_read_timeout 70s;" in text
    assert f"client_max_body_size {4 * MB};" in text and f"the limit is {4 * MB} bytes (4 MB)" in text
    with pytest.raises(KeyError, match="PORT"):
        nginx_config.render("listen @PORT@;", {})


@pytest.mark.slow
def test_the_serving_benchmark_times_each_cold_start_and_stops_each_server(model_dir, nginx_binary, tmp_path):
    """The mechanics of ``benchmarks/serving.py``'s cold start, not its speed: one figure per start, the median
    and max taken from them, and every server started anew and stopped cleanly (one worker booted per start; a non-zero
    exit raises)."""
    from benchmarks.serving import cold_starts

    log_path = tmp_path / "cold.log"
    figures = cold_starts(model_dir, workers=1, repeats=3, log_path=log_path)
    assert len(figures["seconds"]) == 3 and all(value > 0 for value in figures["seconds"])
    assert figures["median_s"] == sorted(figures["seconds"])[1]
    assert figures["max_s"] == max(figures["seconds"])
    assert log_path.read_text(errors="replace").count("Booting worker") == 3, log_tail(log_path)
