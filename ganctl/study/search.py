"""The Optuna search of a study: TPE samples the [search] ranges, the median rule prunes.

Each trial is one ordinary run (seed 0) in the study folder, ``trial-<number>``; Optuna's
storage (SQLite in the study folder, or any database URL it accepts) hands each trial number
to one process only, so workers started on one or several machines (``--worker``) run
disjoint trials. A trial is pruned when its metric along the way (each evaluation for fid/kid,
each log record for a logged statistic) is worse than the median of the other trials' at the
same step. One seed says little: the best trials are then re-run over the study's seeds and
compared with the baseline like any variant. Lower is better (FID, KID, losses).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ganctl.errors import GanctlError
from ganctl.study.spec import BUILT_IN_METRICS, Study

INSTALL = "pip install 'ganctl[study]'"
BEST = 2  # trials re-run over the seeds
DB_FILE = "optuna.db"


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise GanctlError(f"the search needs Optuna, which is not installed: {INSTALL} (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(folder: Path, given: str | None) -> str:
    return given if given is not None else f"sqlite:///{(Path(folder) / DB_FILE).resolve()}"


def open_storage(url: str) -> Any:
    """Optuna's storage at ``url``, or one sentence saying why it cannot be opened."""
    optuna = _optuna()
    try:
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001  (SQLAlchemy and the drivers raise many kinds)
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise GanctlError(f"cannot open the storage --storage {url}: {first}") from None


def check_request(search: str | None, study: Study, trials: int, storage: str | None, folder: Path) -> None:
    """Everything about the search that can be refused, before any run."""
    if search not in (None, "optuna"):
        raise GanctlError(f"--search takes optuna, not '{search}'")
    _optuna()
    if not study.search:
        raise GanctlError("the search needs ranges: a [search] table in the --file (for example d_lr = {low = 1e-5, high = 1e-3, log = true})")
    if trials < 1:
        raise GanctlError(f"--trials must be at least 1, not {trials}")
    if storage is not None:
        open_storage(storage)


class PruningWatch:
    """Sees each record as the trainer writes it; reports the metric and prunes (a progress view's methods)."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial, self.metric = trial, metric
        self.kind, self.key = BUILT_IN_METRICS.get(metric, ("train", metric))

    def start(self, total: int, done: int, per_epoch: int) -> None:
        pass

    def advance(self, step: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def show(self, record: dict[str, Any]) -> None:
        if self.kind == "train":
            self._report(record)

    def show_eval(self, record: dict[str, Any]) -> None:
        if self.kind == "evals":
            self._report(record)

    def _report(self, record: dict[str, Any]) -> None:
        import optuna

        value = record.get(self.key)
        if isinstance(value, (int, float)):
            self.trial.report(float(value), int(record["step"]))
            if self.trial.should_prune():
                raise optuna.TrialPruned()


def sampled(trial: Any, ranges: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trial's values of the searched fields; real numbers to 3 significant digits (short names)."""
    values = {}
    for name, r in ranges.items():
        if r["int"]:
            values[name] = trial.suggest_int(name, int(r["low"]), int(r["high"]), log=r["log"])
        else:
            values[name] = float(f"{trial.suggest_float(name, r['low'], r['high'], log=r['log']):.3g}")
    return values


def run(study: Study, folder: Path, values: dict[str, Any], say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run this process's trials; then (not a --worker) the variants to compare: the baseline and the best trials."""
    from ganctl.study import results, runner

    optuna = _optuna()
    url = storage_url(folder, values["storage"])
    storage = open_storage(url)
    searched = optuna.create_study(
        study_name=study.name, storage=storage, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(), pruner=optuna.pruners.MedianPruner(n_startup_trials=2),
    )  # fmt: skip

    def objective(trial: Any) -> float:
        overrides = sampled(trial, study.search)
        path = Path(folder) / f"trial-{trial.number:04d}"
        config = runner.build_config(study, {**study.variants[0], **overrides}, 0, path)
        trial.set_user_attr("run", path.name)
        try:
            runner.run_one(config.to_dict(), False, watch=PruningWatch(trial, study.metric))
        except optuna.TrialPruned:
            say(f"trial {trial.number} {overrides}: pruned")
            raise
        value = results.metric_value(path, study.metric)
        say(f"trial {trial.number} {overrides}: {study.metric} {value:.4g}")
        return value

    searched.optimize(objective, n_trials=values["trials"], catch=())
    if values["worker"]:
        return []
    done = [t for t in searched.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    best = sorted(done, key=lambda t: t.value)[:BEST]
    baseline = study.variants[0]
    chosen = [baseline] + [{**baseline, **sampled(t, study.search)} for t in best]
    return [v for i, v in enumerate(chosen) if v not in chosen[:i]]
