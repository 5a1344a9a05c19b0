"""Several uvicorn worker processes, each listening on its own `SO_REUSEPORT` socket.

uvicorn's own supervisor shares one listening socket between its workers. Each worker's event loop accepts every
pending connection it can when it wakes, so a burst of new connections lands mostly on one worker: with 16
keep-alive clients we saw 12–15 of them on one worker and the rest on the other, which then sat half idle while the
first queued. With a socket per worker and `SO_REUSEPORT`, the kernel spreads new connections over the sockets by a
hash of their addresses.

The supervisor keeps the shape of uvicorn's: SIGTERM or SIGINT stops the workers gracefully; a worker that dies is
logged and started again.
"""

import logging
import multiprocessing
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

logger = logging.getLogger("stageflow.serve")

SHUTDOWN_SECONDS = 30.0
BACKLOG = 2048  # uvicorn's default


def available() -> bool:
    """Linux balances connections over SO_REUSEPORT sockets; other systems have no such option or do not balance."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ensure_port_free(host: str, port: int) -> None:
    """Fail as a plain bind would when something already listens there: a second server with SO_REUSEPORT would
    otherwise quietly share the port with the first."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def _worker(app: str, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, factory=True, host=host, port=port, log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[_listening_socket(host, port)])


def serve(app: str, host: str, port: int, workers: int) -> None:
    """Run `workers` uvicorn processes of the app factory `app` on host:port until SIGTERM or SIGINT."""
    ensure_port_free(host, port)
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(app, host, port), daemon=False)
        process.start()
        return process

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start() for _ in range(workers)]
    logger.info("serving on %s:%s with %d workers (SO_REUSEPORT)", host, port, workers)
    try:
        while not stopping:
            for index, process in enumerate(processes):
                if not process.is_alive() and not stopping:
                    logger.warning("worker %s exited with code %s; starting another", process.pid, process.exitcode)
                    processes[index] = start()
            time.sleep(0.25)
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then runs the lifespan's end
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
