"""Every (variant, seed) of a study as an ordinary training run in the study folder.

Each run is ``ganctl train``'s own trainer (``training.loop.Trainer``) on a ``TrainConfig``
built as ``ganctl train`` builds it: the architecture's recipe with the base's and the
variant's overrides, the seed, ``--out`` the study folder's ``<variant>-seed<k>``. So every run
folder is an ordinary run (``ganctl runs``, ``report``, ``sample``, ``train --resume`` read it).

What to do with each run is read from its folder, so re-running a study continues it: a
finished run is kept, an interrupted one is resumed from its newest checkpoint, a missing one
is trained, one that another process is training is left to it. One run at a time runs in this
process (torch imported once: small runs take seconds); ``--jobs K`` runs K at a time in
worker processes, the CPU threads shared out among them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.study.spec import Study, variant_name

KEEP, TRAIN, RESUME, BUSY = "keep", "train", "resume", "busy"


@dataclass(frozen=True)
class Task:
    variant: int  # index into study.variants
    seed: int
    path: Path
    action: str  # keep | train | resume | busy


def run_path(folder: Path, overrides: dict[str, Any], seed: int) -> Path:
    return Path(folder) / f"{variant_name(overrides)}-seed{seed}"


def build_config(study: Study, overrides: dict[str, Any], seed: int, run_dir: Path) -> Any:
    """The run's TrainConfig, as ``ganctl train`` would resolve its command line."""
    from ganctl.registry import ARCHITECTURES
    from ganctl.study.spec import option_for
    from ganctl.training.config import TrainConfig

    fields = {**study.base, **overrides}
    recipe_fields = {k: v for k, v in fields.items() if option_for(k, "study").on == "recipe"}
    recipe = ARCHITECTURES.get(study.arch).obj.recipe.replace(**recipe_fields)
    config = TrainConfig(arch=study.arch, recipe=recipe)
    for key, value in fields.items():
        if key not in recipe_fields:
            setattr(config, key, value)
    config.seed, config.run_dir, config.quiet, config.study = seed, str(run_dir), True, study.name
    return config


def check_study(study: Study, folder: Path) -> None:
    """Every variant's configuration checked as ``train`` checks it, before any run starts."""
    from ganctl.registry import DATASETS
    from ganctl.training.config import check

    for overrides in study.variants:
        config = build_config(study, overrides, 0, run_path(folder, overrides, 0))
        try:
            check(config)
            dataset = config.recipe.dataset
            if not dataset.startswith("folder:"):
                DATASETS.get(dataset)
        except GanctlError as exc:
            raise GanctlError(f"variant {variant_name(overrides)}: {exc}") from None
    if study.metric in ("fid", "kid") and study.base.get("eval_every") is None:
        raise GanctlError(f"--metric {study.metric} needs an evaluation: add --eval-every N (and --eval-n)")


def plan(study: Study, folder: Path, variants: list[dict[str, Any]], seeds: int) -> list[Task]:
    """What each (variant, seed) needs, read from its run folder."""
    return [
        Task(study.variants.index(v), seed, path, action_of(path))
        for v in variants
        for seed in range(seeds)
        for path in [run_path(folder, v, seed)]
    ]


def action_of(path: Path) -> str:
    from ganctl.runfolder import info
    from ganctl.runfolder.config import read_config
    from ganctl.runfolder.layout import RunFolder
    from ganctl.runfolder.lock import is_running
    from ganctl.runfolder.records import read_metrics

    if not RunFolder(path).config.is_file():
        return TRAIN  # never started, or killed before its config.json: nothing to keep
    if is_running(path):
        return BUSY
    config = read_config(path)
    progress = info.progress(path, config, read_metrics(RunFolder(path).metrics))
    return KEEP if info.run_state(path, progress.done, progress.planned) == "finished" else RESUME


def execute(study: Study, tasks: list[Task], jobs: int, say: Callable[[str], None]) -> None:
    """Train or resume every task that needs it, ``jobs`` at a time."""
    todo = [t for t in tasks if t.action in (TRAIN, RESUME)]
    for t in tasks:
        if t.action == BUSY:
            say(f"{t.path.name}: another process is training it; left to it")
    if not todo:
        return
    payloads = [(build_config(study, study.variants[t.variant], t.seed, t.path).to_dict(), t.action == RESUME) for t in todo]
    if jobs <= 1:
        for i, (task, payload) in enumerate(zip(todo, payloads), 1):
            seconds = run_one(*payload)
            say(f"[{i}/{len(todo)}] {task.path.name}: {'resumed' if task.action == RESUME else 'trained'} in {seconds:.1f} s")
        return
    _execute_parallel(todo, payloads, jobs, say)


def _execute_parallel(todo: list[Task], payloads: list[tuple], jobs: int, say: Callable[[str], None]) -> None:
    import concurrent.futures
    import multiprocessing

    import torch

    from ganctl import plugins

    threads = max(1, torch.get_num_threads() // jobs)
    files = [str(p) for p in plugins.state.requested_files]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(threads, files)) as pool:
        futures = {pool.submit(run_one, *payload): task for task, payload in zip(todo, payloads)}
        error = None
        for i, future in enumerate(concurrent.futures.as_completed(futures), 1):
            task = futures[future]
            try:
                seconds = future.result()
            except GanctlError as exc:  # the others finish; the first refusal is reported
                error = error or GanctlError(f"{task.path.name}: {exc}")
                continue
            say(f"[{i}/{len(todo)}] {task.path.name}: {'resumed' if task.action == RESUME else 'trained'} in {seconds:.1f} s")
        if error is not None:
            raise error


def _worker_init(threads: int, plugin_files: list[str]) -> None:
    import torch

    from ganctl import plugins

    torch.set_num_threads(threads)
    if plugin_files:
        plugins.request_files([Path(p) for p in plugin_files])


def run_one(config: dict[str, Any], resume: bool, watch: Any = None) -> float:
    """Train (or resume) one run quietly; its seconds. A resumed run keeps its own config.json.

    ``watch``: an object with the progress view's methods (start, advance, show, show_eval,
    stop) that sees each record as it is written (the search prunes through it)."""
    from ganctl.runfolder.layout import RunFolder
    from ganctl.training.config import TrainConfig, read_config_file
    from ganctl.training.loop import TrainingInterrupted, Trainer

    started = time.perf_counter()
    wanted = TrainConfig.from_dict(config)
    if resume:
        stored = read_config_file(RunFolder(wanted.run_dir).config)
        for key in ("device", "compile", "stream_data", "quiet", "data_dir", "download"):
            setattr(stored, key, getattr(wanted, key))  # how to compute, never what
        stored.run_dir = wanted.run_dir
        wanted = stored
    try:
        Trainer(wanted, resume=resume, say=lambda message: None, progress=watch).run()
    except TrainingInterrupted:
        raise GanctlError(f"interrupted while training {wanted.run_dir} (checkpoint saved); run the same study command again to continue") from None
    return time.perf_counter() - started
