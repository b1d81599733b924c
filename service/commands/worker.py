"""`tgwatch worker`: non-forking RQ workers for posts and deliveries, in one or N processes."""

from __future__ import annotations

import click

from service import constants
from service.commands.root import StopSignals


@click.command()
@click.option("--burst", is_flag=True, help="Process until the queues are empty, then exit.")
@click.option("-n", "--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to run.")  # fmt: skip
@click.option("--queue", "queues", multiple=True,
              type=click.Choice([constants.POSTS_QUEUE, constants.DELIVERIES_QUEUE]),
              help="Queue(s) to serve (default: both).")  # fmt: skip
def worker(burst: bool, processes: int, queues: tuple[str, ...]) -> None:
    """Run workers: non-forking RQ workers that process posts and deliveries.

    With TGWATCH_METRICS_PORT set, worker i serves its ops endpoints on that port + i. With
    -n N, a worker process that dies is restarted (with a backoff); Ctrl-C / SIGTERM stops them
    all after their current job.
    """
    signals = StopSignals().install() if processes > 1 else None
    from service.commands.root import open_root
    from service.ops import ops_ports
    from workers.runner import ALL_QUEUES, Supervisor, WorkerSpec, run_worker, worker_env

    with open_root() as root:
        names = queues or ALL_QUEUES
        _, ports = ops_ports(root.settings.metrics_port, processes, listener=False)
        env = worker_env(root.redis.url)
        specs = [WorkerSpec(env, root.redis.url, tuple(names), burst, index, ports[index])
                 for index in range(processes)]  # fmt: skip
        if signals is None:
            run_worker(specs[0], root.settings)
            return
        if burst:  # burst workers end on their own: wait for them, restart none
            supervisor = Supervisor(specs).start()
            for process in supervisor.processes:
                process.join()
            return
        Supervisor(specs).start().run(signals.requested)
