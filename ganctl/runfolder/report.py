"""``ganctl report``: one self-contained HTML page about a run, or several runs compared.

The page needs nothing but itself: the plots (matplotlib, drawn to PNG) and the sample grids
are inlined as base64 ``data:`` URIs, the CSS is inline, and there is no script and no URL to
any other place, so it opens from a mail attachment or an air-gapped machine alike.

It reads a run through ``ganctl.runfolder`` as far as the run got: a run still training or an
interrupted one is reported up to its last record.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganctl import __version__
from ganctl.errors import GanctlError
from ganctl.runfolder import info as runinfo
from ganctl.runfolder import layout
from ganctl.runfolder.config import read_config
from ganctl.runfolder.layout import RunFolder
from ganctl.runfolder.records import Metrics, is_number, read_metrics
from ganctl.runfolder.report_plots import Panel, Series, draw, smoothing_weight

MAX_CURVES = 16  # statistics plotted; a foreign or edited file with hundreds gets the first ones (and a note)
MAX_STRIP = 60  # grids in a run's strip; more are thinned out evenly (first and last kept)
THUMB_WIDTH = 256  # grids wider than this are shrunk for the strip (the final grid is not)
EVENT_GREY = "#555555"
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]
GENERATOR_FILES = (("best", layout.BEST_GENERATOR), ("final", layout.FINAL_GENERATOR), ("final, not averaged", layout.RAW_GENERATOR))


def require_matplotlib() -> None:
    """Refuse early, before any file is read, when the plotting library is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise GanctlError("ganctl report needs matplotlib: pip install 'ganctl[report]'")


# --- what is read from a run ----------------------------------------------------------------
@dataclass
class RunData:
    path: Path
    label: str  # the run's name on the page (its folder name; the path if two runs share it)
    config: dict[str, Any]
    metrics: Metrics
    progress: runinfo.Progress
    state: str
    grids: list[Path]  # the epochs' grids (RunFolder.epoch_grids), oldest first
    final_grid: Path | None
    colour: str = COLOURS[0]

    @property
    def has_content(self) -> bool:
        return bool(self.metrics) or bool(self.grids) or self.final_grid is not None


def read_run(path: Path) -> RunData:
    folder = RunFolder(path)
    config = read_config(path)
    metrics = read_metrics(folder.metrics)
    progress = runinfo.progress(path, config, metrics)
    grids = folder.epoch_grids()
    final = folder.final_grid
    return RunData(
        path=path, label=path.name, config=config, metrics=metrics, progress=progress,
        state=runinfo.run_state(path, progress.done, progress.planned), grids=grids,
        final_grid=final if final.is_file() else (grids[-1] if grids else None),
    )  # fmt: skip


@dataclass
class Report:
    html: str
    notes: list[str] = field(default_factory=list)  # also worth saying on stderr (skipped lines)


def build_report(paths: list[Path]) -> Report:
    """The page for these run folders (each already checked to be a run)."""
    data = [read_run(Path(p)) for p in paths]
    for run in data:
        if not run.has_content:
            raise GanctlError(f"{run.path} has no metrics records and no sample grids yet; nothing to report")
    names = [r.path.name for r in data]
    for i, run in enumerate(data):
        run.colour = COLOURS[i % len(COLOURS)]
        if names.count(run.label) > 1:
            run.label = str(run.path)
    notes = [
        f"{RunFolder(run.path).metrics}: {run.metrics.skipped:,} unreadable line{'s' if run.metrics.skipped != 1 else ''} skipped"
        for run in data if run.metrics.skipped
    ]  # fmt: skip
    page = _Page(data, notes)
    return Report(page.render(), notes)


# --- the page -------------------------------------------------------------------------------
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0 auto;
       max-width: 1100px; padding: 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
h3 { margin-bottom: .3em; } .meta, figcaption, .quiet { color: #666; } code { font-size: .95em; }
nav a { margin-right: 1em; color: #1f5fa8; }
table { border-collapse: collapse; margin: .5em 0 1em; } th, td { border: 1px solid #ddd; padding: .25em .6em;
       text-align: left; vertical-align: top; } th { background: #f5f5f5; } td.num { text-align: right; }
tr.differs td { background: #fff6d5; }
.note { background: #fff3cd; border: 1px solid #e6d08a; padding: .5em .8em; border-radius: 4px; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 2px; margin-right: .35em; }
figure { margin: .8em 0; } figure.plot img { max-width: 100%; }
.side { display: flex; flex-wrap: wrap; gap: 0 2em; align-items: flex-start; }
.strip { display: flex; gap: 10px; overflow-x: auto; padding-bottom: .5em; }
.strip figure { margin: 0; flex: none; text-align: center; }
.strip img { height: 150px; image-rendering: pixelated; border: 1px solid #ccc; }
.final img { width: min(100%, 560px); image-rendering: pixelated; border: 1px solid #ccc; }
.state-finished { color: #1a7f37; } .state-running { color: #0969da; } .state-interrupted { color: #9a6700; }
"""

TRAIN_GROUPS = (  # how the training statistics are grouped into plots; the rest get one plot each
    ("Losses", "loss", lambda k: "loss" in k),
    ("Discriminator accuracy", "accuracy", lambda k: k.startswith(("d_acc", "acc"))),
    ("Speed", "images/s", lambda k: k.endswith("_per_s")),
    ("Learning rates", "learning rate", lambda k: k.startswith("lr_")),
)


class _Page:
    def __init__(self, runs_: list[RunData], notes: list[str]) -> None:
        self.runs = runs_
        self.notes = notes
        self.several = len(runs_) > 1

    def render(self) -> str:
        title = "ganctl report: " + (self.runs[0].label if not self.several else f"{len(self.runs)} runs compared")
        body = [
            f"<h1>{_e(title)}</h1>",
            f'<p class="meta">Written {_e(time.strftime("%Y-%m-%d %H:%M:%S"))} by ganctl {_e(__version__)}.</p>',
            '<nav><a href="#summary">Summary</a><a href="#recipe">Recipe</a><a href="#curves">Training curves</a>'
            '<a href="#evaluation">FID and KID</a><a href="#events">Health events</a><a href="#samples">Samples</a>'
            '<a href="#generators">Generator files</a></nav>',
            self.summary(), self.recipe(), self.curves(), self.evaluation(), self.events(), self.samples(), self.generators(),
        ]  # fmt: skip
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
        )

    # --- sections ---------------------------------------------------------------------------
    def summary(self) -> str:
        rows = []
        for run in self.runs:
            p, best = run.progress, run.metrics.best_eval()
            planned = "?" if p.planned is None else f"{'' if p.planned_exact else '≈'}{p.planned:,}"
            per_epoch = "?" if p.per_epoch is None else f"{'' if p.per_epoch.exact else '≈'}{p.per_epoch.n:,}"
            best_text = f"{best['fid']:.2f} at step {best['step']:,}" if best else "—"
            rows.append(
                f"<tr><td>{_swatch(run)}{_e(run.label)}</td><td>{_e(run.config.get('arch', '?'))}</td>"
                f"<td>{_e(run.config['recipe'].get('dataset', '?'))}</td><td>{_e(run.config['recipe'].get('loss', '?'))}</td>"
                f'<td class="num">{p.done:,} / {planned}</td><td class="num">{per_epoch}</td>'
                f'<td class="state-{_e(run.state)}">{_e(run.state)}</td>'
                f'<td class="num">{_e(best_text)}</td>'
                f"<td><code>{_e(run.path)}</code></td></tr>"
            )
        table = ("<table><tr><th>run</th><th>architecture</th><th>dataset</th><th>loss</th><th>steps done / planned</th>"
                 "<th>steps an epoch</th><th>state</th><th>best FID</th><th>folder</th></tr>" + "".join(rows) + "</table>")  # fmt: skip
        notes = [f'<p class="note">{_e(n)}.</p>' for n in self.notes]
        notes += [
            f'<p class="note">{_e(run.label)} is still training: this page shows it up to step {run.progress.done:,}; '
            "write the report again for more.</p>"
            for run in self.runs if run.state == "running"
        ]  # fmt: skip
        return '<section id="summary"><h2>Summary</h2>' + table + "".join(notes) + "</section>"

    def recipe(self) -> str:
        head = "<tr><th>setting</th>" + "".join(f"<th>{_swatch(r)}{_e(r.label)}</th>" for r in self.runs) + "</tr>"
        tables = []
        for part in (0, 1):  # the recipe itself, then the run's options, side by side
            flat = [_flat_config(run.config)[part] for run in self.runs]
            rows = []
            for key in dict.fromkeys(k for f in flat for k in f):
                values = [f.get(key, "—") for f in flat]
                mark = ' class="differs"' if self.several and len(set(values)) > 1 else ""
                rows.append(f"<tr{mark}><th>{_e(key)}</th>" + "".join(f"<td>{_e(v)}</td>" for v in values) + "</tr>")
            tables.append(f"<table>{head}{''.join(rows)}</table>")
        intro = ("<p>The resolved recipe (left) and run options (right) as <code>config.json</code> records them"
                 + ("; settings that differ between the runs are highlighted." if self.several else ".") + "</p>")  # fmt: skip
        return f'<section id="recipe"><h2>Recipe</h2>{intro}<div class="side">{"".join(tables)}</div></section>'

    def curves(self) -> str:
        keys = list(dict.fromkeys(k for run in self.runs for k in run.metrics.curve_keys()))
        if not keys:
            return '<section id="curves"><h2>Training curves</h2><p>No training records yet.</p></section>'
        left_out = keys[MAX_CURVES:]
        keys = keys[:MAX_CURVES]
        panels, used = [], set()
        for title, ylabel, belongs in TRAIN_GROUPS:
            group = [k for k in keys if belongs(k) and k not in used]
            used.update(group)
            panels += self._train_panels(title, ylabel, group)
        for key in keys:  # r1, learning rates, augmentation p...: each on its own scale
            if key not in used:
                panels += self._train_panels(key, key, [key])
        # one run: events in grey, apart from the statistics' colours; several: each in its run's colour
        events = [(e["step"], e["event"], run.colour if self.several else EVENT_GREY) for run in self.runs for e in run.metrics.events]
        png = draw(panels, events, smooth=True)
        weight = smoothing_weight(max(len(run.metrics.train) for run in self.runs))
        how = (f"Lines: exponential moving average (weight {weight:.2f}, debiased, as TensorBoard smooths); faint: the raw records."
               if weight else "Too few records to smooth: the raw records.")  # fmt: skip
        events_note = " Dashed vertical lines: health events (listed below)." if events else ""
        colours = " One colour per run." if self.several else ""
        more = f" {len(left_out):,} more statistics are not plotted (at most {MAX_CURVES})." if left_out else ""
        return ('<section id="curves"><h2>Training curves</h2>'
                f'<p class="quiet">{_e(how + events_note + colours + more)} x: training step.</p>'
                f'<figure class="plot"><img src="{_data_uri(png)}" alt="training curves"></figure></section>')  # fmt: skip

    def _train_panels(self, title: str, ylabel: str, keys: list[str]) -> list[Panel]:
        """One run: the group's statistics in one plot. Several runs: a plot per statistic, a colour per run."""
        if not keys:
            return []
        if not self.several:
            run = self.runs[0]
            series = [Series(k, COLOURS[i % len(COLOURS)], *run.metrics.series(k)) for i, k in enumerate(keys)]
            return [Panel(title, ylabel, series)]
        return [Panel(key, key, [Series(run.label, run.colour, *run.metrics.series(key)) for run in self.runs]) for key in keys]

    def evaluation(self) -> str:
        if not any(run.metrics.evals for run in self.runs):
            return ('<section id="evaluation"><h2>FID and KID</h2><p>No evaluation records: train with '
                    "<code>--eval-every N</code> to measure FID and KID every N epochs (docs/eval.md).</p></section>")  # fmt: skip
        fid_series, kid_series, bests, bands = [], [], [], []
        for run in self.runs:
            steps, fids = run.metrics.series("fid", "evals")
            label = run.label if self.several else "FID"
            fid_series.append(Series(label, run.colour, steps, fids))
            best = run.metrics.best_eval()
            if best:
                who = f"{run.label}: " if self.several else ""
                bests.append((best["step"], float(best["fid"]), f"{who}best {best['fid']:.2f} at step {best['step']:,}", run.colour))
            k_steps, kids = run.metrics.series("kid_mean", "evals")
            kid_series.append(Series(run.label if self.several else "KID", run.colour, k_steps, kids))
            stds = dict(zip(*run.metrics.series("kid_std", "evals")))
            if stds:
                bands.append((k_steps, [k - stds.get(s, 0.0) for s, k in zip(k_steps, kids)],
                              [k + stds.get(s, 0.0) for s, k in zip(k_steps, kids)], run.colour))  # fmt: skip
        panels = [Panel("FID (lower is better)", "FID", fid_series, markers=True, best=bests),
                  Panel("KID (mean ± std over subsets)", "KID", kid_series, markers=True, bands=bands)]  # fmt: skip
        png = draw(panels, [], smooth=False)
        rows = []
        for run in self.runs:
            for r in run.metrics.evals:
                std = r["kid_std"] if is_number(r.get("kid_std")) else 0.0
                kid = f"{r['kid_mean']:.5f} ± {std:.5f}" if is_number(r.get("kid_mean")) else "—"
                fid = f"{r['fid']:.3f}" if is_number(r.get("fid")) else "—"
                secs = f"{r['eval_seconds']:.1f}" if is_number(r.get("eval_seconds")) else "—"
                n = (r.get("protocol") or {}).get("n_evaluated", "—") if isinstance(r.get("protocol"), dict) else "—"
                rows.append(f"<tr><td>{_swatch(run)}{_e(run.label)}</td><td class=\"num\">{r['step']:,}</td><td class=\"num\">{_e(fid)}</td>"
                            f"<td class=\"num\">{_e(kid)}</td><td>{'★' if r.get('best') else ''}</td><td class=\"num\">{_e(n)}</td>"
                            f"<td class=\"num\">{_e(secs)}</td></tr>")  # fmt: skip
        table = ("<table><tr><th>run</th><th>step</th><th>FID</th><th>KID</th><th>best so far</th><th>images</th><th>seconds</th></tr>"
                 + "".join(rows) + "</table>")  # fmt: skip
        return (f'<section id="evaluation"><h2>FID and KID</h2><figure class="plot"><img src="{_data_uri(png)}" alt="FID and KID">'
                "<figcaption>FID and KID over training; the star marks the lowest FID (best.safetensors).</figcaption></figure>"
                + table + "</section>")  # fmt: skip

    def events(self) -> str:
        rows = [
            f"<tr><td>{_swatch(run)}{_e(run.label)}</td><td class=\"num\">{e['step']:,}</td><td>{_e(e['event'])}</td><td>{_e(e['message'])}</td></tr>"
            for run in self.runs for e in run.metrics.events
        ]  # fmt: skip
        if not rows:
            return '<section id="events"><h2>Health events</h2><p>None: no loss collapse or loss of sample diversity was detected.</p></section>'
        return ('<section id="events"><h2>Health events</h2><table><tr><th>run</th><th>step</th><th>event</th><th>message</th></tr>'
                + "".join(rows) + "</table></section>")  # fmt: skip

    def samples(self) -> str:
        parts, problems = [], []
        for run in self.runs:
            head = f"<h3>{_swatch(run)}{_e(run.label)}</h3>" if self.several else ""
            shown = _thin(run.grids, MAX_STRIP)
            cells = []
            for path in shown:
                uri = _image_uri(path, THUMB_WIDTH, problems)
                if uri:
                    cells.append(f'<figure><img src="{uri}" alt="{_e(path.name)}"><figcaption>{_e(_grid_label(path))}</figcaption></figure>')
            thinned = f" ({len(shown)} of {len(run.grids)} shown, evenly spaced)" if len(shown) < len(run.grids) else ""
            strip = (f'<p class="quiet">The fixed latents\' grid after each sample epoch{_e(thinned)}.</p><div class="strip">{"".join(cells)}</div>'
                     if cells else "<p>No sample grids yet.</p>")  # fmt: skip
            final = ""
            if run.final_grid is not None and (uri := _image_uri(run.final_grid, None, problems)):
                what = "final grid" if run.final_grid.name == layout.FINAL_GRID else f"latest grid ({_grid_label(run.final_grid)})"
                final = f'<figure class="final"><img src="{uri}" alt="{_e(what)}"><figcaption>{_e(what.capitalize())}</figcaption></figure>'
            parts.append(head + strip + final)
        notes = "".join(f'<p class="note">{_e(p)}.</p>' for p in problems)
        return '<section id="samples"><h2>Samples</h2>' + notes + "".join(parts) + "</section>"

    def generators(self) -> str:
        from ganctl.networks.weights import read_info

        rows = []
        for run in self.runs:
            snapshots = sorted((run.path / layout.SNAPSHOTS).glob("*.safetensors"))
            files = [(what, name) for what, name in GENERATOR_FILES if (run.path / name).is_file()]
            # an unfinished run: its newest snapshot is the generator there is (sample takes it)
            for what, name in files or ([("newest snapshot", f"{layout.SNAPSHOTS}/{snapshots[-1].name}")] if snapshots else []):
                path = run.path / name
                try:
                    info = read_info(path)
                except GanctlError as exc:
                    rows.append(f"<tr><td>{_e(run.label)}</td><td><code>{_e(name)}</code><br>{_e(what)}</td><td colspan=\"2\">{_e(exc)}</td></tr>")
                    continue
                meta = {"architecture": info.architecture, "image shape": "×".join(map(str, info.image_shape)),
                        "latent size": info.latent_dim, "pixel range": list(info.pixel_range),
                        "ganctl version": info.ganctl_version, **info.extra}  # fmt: skip
                listing = "<br>".join(f"{_e(k)}: <code>{_e(v)}</code>" for k, v in meta.items())
                size = runinfo.human_size(path.stat().st_size)
                rows.append(f"<tr><td>{_swatch(run)}{_e(run.label)}</td><td><code>{_e(name)}</code><br>{_e(what)}</td>"
                            f'<td class="num">{_e(size)}</td><td>{listing}</td></tr>')  # fmt: skip
        if not rows:
            return '<section id="generators"><h2>Generator files</h2><p>No generator file yet: no snapshot, final or best generator has been written.</p></section>'
        return ('<section id="generators"><h2>Generator files</h2><p class="quiet">What each file says about itself '
                "(safetensors metadata); <code>ganctl sample --weights FILE</code> uses any of them.</p>"
                "<table><tr><th>run</th><th>file</th><th>size</th><th>metadata</th></tr>" + "".join(rows) + "</table></section>")  # fmt: skip


# --- images and text ------------------------------------------------------------------------
def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _image_uri(path: Path, max_width: int | None, problems: list[str]) -> str | None:
    """A sample grid as a PNG data URI (shrunk to ``max_width``); None, noted, if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.format == "PNG" and (max_width is None or image.width <= max_width):
                return _data_uri(path.read_bytes())  # as written, byte for byte
            if max_width is not None and image.width > max_width:
                image = image.resize((max_width, max(1, round(image.height * max_width / image.width))), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            return _data_uri(buffer.getvalue())
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        problems.append(f"{path} is not a readable image ({type(exc).__name__}), left out")
        return None


def _thin(items: list[Path], k: int) -> list[Path]:
    """At most k items, evenly spaced, the first and the last always among them."""
    if len(items) <= k:
        return items
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in picks]


def _grid_label(path: Path) -> str:
    epoch, kimg = layout.tag_epoch(path.stem), layout.tag_kimg(path.stem)
    if epoch is not None:
        return f"epoch {epoch}"
    return f"{kimg:g} kimg" if kimg is not None else path.stem


def _flat_config(config: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``config.json`` as setting → value text: the architecture and recipe; the run's other options."""
    recipe = {"arch": _value(config.get("arch")), **{k: _value(v) for k, v in config.get("recipe", {}).items()}}
    options = {}
    for key, value in config.items():
        if key in ("arch", "recipe", "run_dir"):
            continue
        if isinstance(value, dict):
            options.update({f"{key}.{k}": _value(v) for k, v in value.items()})
        else:
            options[key] = _value(value)
    return recipe, options


def _value(value: Any) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def _swatch(run: RunData) -> str:
    return f'<span class="swatch" style="background:{run.colour}"></span>'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
