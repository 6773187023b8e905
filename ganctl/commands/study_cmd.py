"""``ganctl study``: a recipe and its variants over several seeds, compared with 95% intervals."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ganctl import options as opts
from ganctl.commands.common import OUTPUT_PANEL, err, handles_errors, out, print_json
from ganctl.errors import GanctlError

STUDY_PANEL = "Study"
SEARCH_PANEL = "Search (pip install 'ganctl\\[study]')"
# `train` options a study sets itself on each run, or that make no sense for several runs.
NOT_PASSED = {"out", "seed", "resume", "dry_run", "quiet", "batch_per_gpu", "dist_backend"}

STUDY_OPTIONS = {
    "out": (Path, typer.Option("--out", help="The study folder: study.json, the search's database and every run (required).", metavar="DIR", rich_help_panel=STUDY_PANEL)),
    "file": (Optional[Path], typer.Option("--file", help="A study file (TOML): name, arch, seeds, metric, [base], [vary], [[variant]], [search]; see docs/comparing-recipes.md.", metavar="PATH", rich_help_panel=STUDY_PANEL)),
    "vary": (Optional[list[str]], typer.Option("--vary", help="FIELD=V1,V2,... (repeatable: a grid); the first variant is the baseline.", metavar="FIELD=VALUES", rich_help_panel=STUDY_PANEL)),
    "seeds": (Optional[int], typer.Option("--seeds", help="Seeds per variant (0..N-1); at least 2, default 3.", rich_help_panel=STUDY_PANEL)),
    "metric": (Optional[str], typer.Option("--metric", help="fid, kid, or any statistic metrics.jsonl logs (its final value); default g_loss.", metavar="NAME", rich_help_panel=STUDY_PANEL)),
    "jobs": (int, typer.Option("--jobs", help="Runs at a time, in worker processes sharing the CPU threads (default 1).", metavar="K", rich_help_panel=STUDY_PANEL)),
    "search": (Optional[str], typer.Option("--search", help="optuna: sample the [search] ranges (TPE), prune with the median rule, re-run the best over the seeds.", metavar="optuna", rich_help_panel=SEARCH_PANEL)),
    "trials": (int, typer.Option("--trials", help="Trials this process runs (default 10).", rich_help_panel=SEARCH_PANEL)),
    "storage": (Optional[str], typer.Option("--storage", help="Optuna database URL (default: sqlite in the study folder); share it to run workers on several machines.", metavar="URL", rich_help_panel=SEARCH_PANEL)),
    "worker": (bool, typer.Option("--worker", help="Only run trials of the search (no re-runs over seeds, no table): start one per process or machine.", rich_help_panel=SEARCH_PANEL)),
    "plot": (bool, typer.Option("--plot", help="Also draw study-<metric>.png in the study folder: each variant's seeds, mean and 95% interval (pip install 'ganctl\\[report]').", rich_help_panel=OUTPUT_PANEL)),
    "as_json": (bool, typer.Option("--json", help="Print the result as one JSON object.", rich_help_panel=OUTPUT_PANEL)),
    "quiet_study": (bool, typer.Option("--quiet", "-q", help="No progress lines.", rich_help_panel=OUTPUT_PANEL)),
}  # fmt: skip
DEFAULTS = {"out": ..., "jobs": 1, "trials": 10, "worker": False, "plot": False, "as_json": False, "quiet_study": False}


def _signature(command):
    from ganctl.commands.train import _typer_parameters

    params = [p for p in _typer_parameters() if p.name not in NOT_PASSED]
    for name, (kind, info) in STUDY_OPTIONS.items():
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=DEFAULTS.get(name), annotation=Annotated[kind, info]))
    command.__signature__ = inspect.Signature(params, return_annotation=None)
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return command


@handles_errors
@_signature
def study_command(**values: Any) -> None:
    """Compare a recipe's variants over several seeds, with 95% intervals.

    Every (variant, seed) is an ordinary run in the study folder; every `train` option goes to
    each run. The table gives each variant's mean with its 95% t interval and its difference
    from the first variant (the baseline) with Welch's t-test. Running the same command again
    continues the study: finished runs are kept, interrupted ones resumed, new seeds added.

    Examples (a grid of two values over three seeds; a study file; its Optuna search):

    ganctl study --arch cifar-dcgan --vary d_lr=2e-4,4e-4 --seeds 3 --out st/dlr

    ganctl study --file lr.toml --out studies/lr --jobs 2

    ganctl study --file lr.toml --out studies/lr --search optuna --trials 20
    """
    from ganctl.study import results, runner, spec

    folder = Path(values["out"])
    study, variants, seeds = _study_from(values, folder)
    if values["search"] is not None or values["worker"]:
        from ganctl.study import search

        search.check_request(values["search"], study, values["trials"], values["storage"], folder)
    runner.check_study(study, folder)  # every variant's values, before anything is written
    if values["plot"]:
        from ganctl.study.plot import require_matplotlib

        require_matplotlib()
    recorded = spec.merge_into_folder(study, folder)
    say = (lambda m: None) if values["quiet_study"] else (lambda m: err.print(m, markup=False, soft_wrap=True))
    if values["search"] is not None or values["worker"]:
        from ganctl.study import search

        variants = search.run(recorded, folder, values, say)
        if values["worker"]:
            return
        # the best trials become variants of the study: re-run over its seeds before any is called better
        recorded = spec.merge_into_folder(spec.Study(**{**vars(recorded), "variants": variants}), folder)
    tasks = runner.plan(recorded, folder, variants, seeds)
    runner.execute(recorded, tasks, values["jobs"], say)
    result = results.collect(recorded, folder, tasks, variants)
    if values["plot"]:
        from ganctl.study.plot import write_plot

        say(f"plot: {write_plot(result)}")
    if values["as_json"]:
        print_json(result.to_json())
        return
    out.print(results.table(result))
    if result.unfinished:
        out.print(f"not counted (not finished): {', '.join(result.unfinished)}", markup=False, style="dim", soft_wrap=True)


def _study_from(values: dict[str, Any], folder: Path):
    """(the study, the variants and the number of seeds this command asks for)."""
    from ganctl.commands.common import check_at_least
    from ganctl.study import spec

    check_at_least("--jobs", values["jobs"])
    train_values = {k: v for k, v in values.items() if k in opts.BY_PARAM and k not in NOT_PASSED}
    recipe, run = opts.overrides(train_values)
    cli_base = {**recipe, **run}
    arch = cli_base.pop("arch", None)
    file = values["file"]
    if file is None and arch is None and not values["vary"]:
        stored = spec.read_study(folder)
        if stored is None:
            raise GanctlError("choose an architecture with --arch, or give a study --file (or an existing study's --out)")
        return stored, stored.variants, values["seeds"] or stored.seeds
    data = spec.read_toml(file) if file is not None else {}
    where = f"study file {file}"
    base = {**spec.fields_of(data.get("base", {}), f"{where} [base]"), **cli_base}
    arch = arch or data.get("arch")
    if not isinstance(arch, str):
        raise GanctlError("choose an architecture with --arch (or arch = \"...\" in the study file)")
    vary = [f"{k}={','.join(map(str, v if isinstance(v, list) else [v]))}" for k, v in (data.get("vary") or {}).items()]
    vary += values["vary"] or []
    variants = spec.grid(vary) if vary else []
    explicit = data.get("variant", [])
    if not isinstance(explicit, list):
        raise GanctlError(f"{where}: [[variant]] must be an array of tables")
    variants += [spec.fields_of(v, f"{where} [[variant]]") for v in explicit]
    variants = variants or [{}]
    if len({spec.variant_name(v) for v in variants}) != len(variants):
        raise GanctlError("two variants are the same; give each once")
    both = sorted({k for v in variants for k in v} & set(base))
    if both:
        raise GanctlError(f"{both[0]} is both set for every run and varied; give it in one place")
    seeds = values["seeds"] if values["seeds"] is not None else data.get("seeds", 3)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 2:
        raise GanctlError(f"--seeds {seeds} gives no interval: a study needs at least 2 seeds per variant (3 or more to resolve much)")
    metric = values["metric"] or data.get("metric") or "g_loss"
    if not isinstance(metric, str) or not metric.strip():
        raise GanctlError(f"{where}: metric must be a name such as g_loss or fid")
    name = data.get("name", folder.name)
    if not isinstance(name, str) or not name:
        raise GanctlError(f"{where}: name must be text")
    search = spec.search_ranges(data.get("search", {}), f"{where} [search]")
    study = spec.Study(name, arch, base, variants, seeds, metric, search)
    return study, variants, seeds
