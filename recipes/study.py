"""Run a residual-design study: ``python -m recipes.study study=NAME [option=value ...] [recipe overrides ...]``.

A study (``conf/study/<name>.yaml``) is a base recipe, named variants (sets of ordinary overrides), seeds,
metrics and the claim it tests. Every (variant, seed) is an ordinary ``recipes.train`` run in
``studies/<name>/runs/<variant>/seed<S>``, launched through Hydra (``hydra/sweeper=study`` with the launcher
you choose); the report (``studies/<name>/report.md`` and PNGs) compares the variants over seeds, paired by
seed against the baseline, and says whether the claim holds. Re-running the same command skips finished
runs and resumes interrupted ones. Docs: ``docs/studies.md``.

Options (anything else is a recipe override applied to every run, e.g. ``trainer.max_epochs=2``):

* ``study=NAME`` (required); ``variants=[a,b]`` / ``seeds=[0,1]``: a subset;
* ``launcher=basic`` (default: one run after another) | ``joblib`` (local processes in parallel, ``jobs=N``,
  default the number of cores, one torch thread each) | ``submitit_local`` | ``submitit_slurm`` (a cluster,
  with ``hydra.launcher.*`` overrides passed through);
* ``dry_run=true``: print the grid and an estimate of its time, run nothing;
* ``report_only=true``: write the report from the runs that have finished;
* ``root=DIR``: the study folder (default ``studies/<name>``).
Exit status 2 with one line for a bad study, variant, option or override, before anything runs.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

from resblocks.errors import ConfigError

from .studies.spec import StudySpec, list_studies, load_study

LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm")
OPTIONS = ("study", "variants", "seeds", "launcher", "jobs", "dry_run", "report_only", "root")
TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """``key=value`` arguments split into the study's options and the recipe overrides (everything else)."""
    opts, rest = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"{arg}: not key=value; valid: study=NAME and key=value overrides (see --help)")
        if key in OPTIONS:
            opts[key] = value
        else:
            rest.append(arg)
    return opts, rest


def _list(value: str, key: str, cast: type = str) -> list:
    items = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
    try:
        return [cast(v) for v in items]
    except ValueError as e:
        raise ConfigError(f"{key}: {value!r}; valid: a list such as [0,1,2]") from e


def _flag(opts: dict[str, str], key: str) -> bool:
    value = opts.get(key, "false").lower()
    if value not in TRUE + FALSE:
        raise ConfigError(f"{key}: {value!r}; valid: true, false")
    return value in TRUE


def plan(opts: dict[str, str]) -> tuple[StudySpec, list[str], list[int], str, int, Path]:
    if "study" not in opts:
        raise ConfigError(f"study: missing; valid: {', '.join(list_studies())}")
    spec = load_study(opts["study"])
    variants = _list(opts["variants"], "variants") if "variants" in opts else list(spec.variants)
    for v in variants:
        if v not in spec.variants:
            raise ConfigError(f"variants: unknown variant {v!r} of study {spec.name!r}; valid: {', '.join(spec.variants)}")
    seeds = _list(opts["seeds"], "seeds", int) if "seeds" in opts else spec.seeds
    launcher = opts.get("launcher", "basic")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"launcher: {launcher!r}; valid: {', '.join(LAUNCHERS)}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        jobs = int(opts.get("jobs", cores if launcher == "joblib" else 1))
    except ValueError as e:
        raise ConfigError(f"jobs: {opts['jobs']!r}; valid: an integer >= 1") from e
    if jobs < 1:
        raise ConfigError(f"jobs: {jobs}; valid: an integer >= 1")
    root = Path(opts.get("root", f"studies/{spec.name}"))
    return spec, variants, seeds, launcher, jobs, root


def check_runs(spec: StudySpec, variants: list[str], seeds: list[int], overrides: list[str], root: Path) -> None:
    """Compose and check every variant's config (seed-independent) before anything runs: one line if bad."""
    from hydra import compose, initialize_config_dir

    from . import config as _config  # noqa: F401  (the schema)
    from .build import validate
    from .config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for v in variants:
            run = [*spec.run_overrides(v, seeds[0]), *overrides, f"run_dir={root / 'check'}", "logger=csv"]
            try:
                cfg = compose("train", overrides=run)
            except Exception as e:  # Hydra's own composition errors: unknown keys or group options
                raise ConfigError(f"variant {v}: {' '.join(str(e).split())}") from e
            try:
                validate(cfg, multirun=True)
            except ConfigError as e:
                raise ConfigError(f"variant {v}: {e}") from e


def check_finished(spec: StudySpec, variants: list[str], seeds: list[int], overrides: list[str], root: Path) -> None:
    """A finished run is kept only if it was made with the settings asked for now; else one line, nothing runs.

    (Re-running a study after editing its YAML would otherwise mix runs of two different studies.)
    """
    from hydra_plugins.resblocks_study.study_sweeper import is_finished, meaningful, run_dir, stored_overrides

    for s in seeds:
        for v in variants:
            folder = run_dir(root, v, s)
            if not is_finished(folder):
                continue
            stored = stored_overrides(folder)
            want = meaningful([*spec.run_overrides(v, s), *overrides])
            if stored is not None and meaningful(stored) != want:
                diff = sorted(set(want) ^ set(meaningful(stored)))
                raise ConfigError(
                    f"study: the finished run {folder} was made with other settings ({', '.join(diff[:4])}); "
                    "valid: root=<a new folder> for the new settings, or the settings it was made with"
                )


def hydra_argv(study: str, variants: list[str], seeds: list[int], launcher: str, jobs: int, root: Path,
               overrides: list[str]) -> list[str]:  # fmt: skip
    """The ``recipes.train`` multirun command line that runs the study through Hydra's sweeper and launcher.

    ``study``: the study's name or the path of its YAML, as given.
    """
    argv = [
        "--multirun",
        "hydra/sweeper=study",
        f"hydra.sweeper.study={study}",
        f"hydra.sweeper.root={root}",
        f"hydra.sweeper.variants=[{','.join(variants)}]",
        f"hydra.sweeper.seeds=[{','.join(map(str, seeds))}]",
        f"hydra.sweep.dir={root / 'runs'}",
        f"hydra/launcher={launcher}",
    ]
    if launcher == "joblib":
        # One torch thread per job and as many jobs as cores: no oversubscription, all cores busy.
        argv += [f"hydra.launcher.n_jobs={jobs}", "hydra.sweeper.threads=1"]
    return argv + overrides


def describe() -> str:
    lines = [__doc__.strip(), "", "Studies:"]
    for name in list_studies():
        try:
            spec = load_study(name)
        except ConfigError as e:
            lines.append(f"  {name}: (broken: {e})")
            continue
        runs = len(spec.variants) * len(spec.seeds)
        lines.append(f"  {name}: {runs} runs ({len(spec.variants)} variants x {len(spec.seeds)} seeds) of {spec.recipe}")
        lines.append(f"      claim: {spec.claim}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(describe())
        return 0
    try:
        opts, overrides = parse(argv)
        spec, variants, seeds, launcher, jobs, root = plan(opts)
        report_only, dry_run = _flag(opts, "report_only"), _flag(opts, "dry_run")
        if not report_only:
            check_runs(spec, variants, seeds, overrides, root)
            check_finished(spec, variants, seeds, overrides, root)
    except ConfigError as e:
        if os.environ.get("RESBLOCKS_DEBUG") == "1":
            raise
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    from .studies.report import write_report

    # the command that runs the study: a report written on demand names the study's command, not itself
    command = "python -m recipes.study " + " ".join(shlex.quote(a) for a in argv if not a.startswith("report_only="))
    if dry_run:
        from hydra_plugins.resblocks_study.study_sweeper import is_finished, run_dir

        todo = [(v, s) for s in seeds for v in variants if not is_finished(run_dir(root, v, s))]
        print(f"study {spec.name}: {len(variants)} variants x {len(seeds)} seeds = {len(variants) * len(seeds)} runs, "
              f"{len(todo)} to run, launcher {launcher} ({jobs} at a time)")  # fmt: skip
        for v in variants:
            print(f"  {v}: {' '.join(spec.run_overrides(v, seeds[0])[1:-1] + overrides) or '(recipe as is)'}")
        if spec.minutes_per_run:
            est = spec.minutes_per_run * len(todo) / jobs
            print(f"  estimate: {est:.0f} min ({spec.minutes_per_run:g} min per run measured here, {jobs} at a time)")
        else:
            print("  estimate: unknown (the study sets no minutes_per_run)")
        return 0
    start = time.perf_counter()
    if not report_only:
        # The runs are one `recipes.train` multirun: Hydra's study sweeper lists the jobs, its launcher runs them.
        import subprocess

        argv_train = hydra_argv(opts["study"], variants, seeds, launcher, jobs, root, overrides)
        code = subprocess.call([sys.executable, "-m", "recipes.train", *argv_train])
        if code == 2:
            return 2  # a config error, already reported in one line
    wall = None if report_only else time.perf_counter() - start
    path = write_report(spec, root, seeds=seeds, command=command, wall_seconds=wall)
    print(f"study {spec.name}: report {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
