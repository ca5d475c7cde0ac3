"""``hydra/sweeper=study``: a Hydra sweeper whose jobs are the (variant, seed) runs of a resblocks study.

A study is not a Cartesian product of values (Hydra's basic sweeper): each variant is its own set of
overrides (``{model: cifar_resnet56, shortcut: none}``), crossed with the seeds. This sweeper turns
``conf/study/<name>.yaml`` into that list of override lists and hands it to whatever Hydra launcher is
configured (``basic``: one after another in this process; ``joblib``: local processes in parallel;
``submitit_local`` / ``submitit_slurm``: processes or cluster jobs), so resblocks schedules nothing itself.

Each job gets its own ``run_dir`` (``<root>/runs/<variant>/seed<S>``) and ``resume=auto``: a finished run
(its ``summary.json`` exists) is left out, an interrupted one resumes from its last checkpoint, so running
the same study command again after a crash, a pre-emption or a stop finishes it without re-training.
All runs go into one W&B group (the study's name), tagged with their variant.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class StudySweeperConf:
    _target_: str = "hydra_plugins.resblocks_study.study_sweeper.StudySweeper"
    study: str = ""  # conf/study/<study>.yaml
    root: str = "studies/${hydra.sweeper.study}"  # the study folder: runs/, report.md, pictures
    # (typing.Optional/List: Hydra loads plugin modules outside sys.modules, where string annotations fail)
    variants: Optional[List[str]] = None  # a subset of the study's variants; null = all
    seeds: Optional[List[int]] = None  # a subset (or other) seeds; null = the study's
    threads: Optional[int] = None  # torch threads per run (the joblib launcher: 1 per job, jobs = cores)
    extra: List[str] = field(default_factory=list)  # overrides for every run, after the study's own


ConfigStore.instance().store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="resblocks")


def run_dir(root: Union[str, Path], variant: str, seed: int) -> Path:
    return Path(root) / "runs" / variant / f"seed{seed}"


def is_finished(folder: Path) -> bool:
    return (folder / "summary.json").is_file()


# Overrides that change how a run is shown or logged, not what it computes.
COSMETIC = ("trainer.enable_progress_bar", "trainer.enable_model_summary", "logger", "threads", "name", "run_dir",
            "resume", "hydra.")  # fmt: skip


def meaningful(overrides: List[str]) -> List[str]:
    """The overrides that decide what a run computes, ``key=value`` sorted, the last one of a key winning (as in
    Hydra), for comparing a finished run with a new request."""
    keep = {}
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if not any(key == c or key.startswith(c + ".") or (c.endswith(".") and key.startswith(c)) for c in COSMETIC):
            keep[key] = f"{key}={o.split('=', 1)[1] if '=' in o else ''}"
    return sorted(keep.values())


def stored_overrides(folder: Path) -> Optional[List[str]]:
    """The task overrides a run was made with (``.hydra/overrides.yaml``), or None if it has no record."""
    path = folder / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


class StudySweeper(Sweeper):
    def __init__(
        self,
        study: str,
        root: str,
        variants: Optional[List[str]] = None,
        seeds: Optional[List[int]] = None,
        threads: Optional[int] = None,
        extra: Optional[List[str]] = None,
    ) -> None:
        self.study, self.root = study, root
        self.variants, self.seeds, self.threads = variants, seeds, threads
        self.extra = list(extra or [])
        self.config: Optional[DictConfig] = None
        self.launcher: Any = None
        self.hydra_context: Optional[HydraContext] = None
        self.skipped: List[Tuple[str, int]] = []

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def job_overrides(self, arguments: List[str]) -> List[List[str]]:
        """The override list of every (variant, seed) still to run (finished runs are left out)."""
        from recipes.studies.spec import load_study

        spec = load_study(self.study)
        variants = self.variants or list(spec.variants)
        seeds = self.seeds if self.seeds is not None else spec.seeds
        jobs, self.skipped = [], []
        for seed in seeds:  # seeds outermost: a partial study has every variant at the first seeds
            for v in variants:
                folder = run_dir(self.root, v, seed)
                if is_finished(folder):
                    self.skipped.append((v, seed))
                    continue
                jobs.append(
                    [
                        *spec.run_overrides(v, seed),
                        *self.extra,
                        *arguments,
                        f"run_dir={folder}",
                        # Hydra's own job folder is the run folder too (recipes.train uses it in a multirun).
                        f"hydra.sweep.dir={Path(self.root) / 'runs'}",
                        f"hydra.sweep.subdir={v}/seed{seed}",
                        "resume=auto",
                        f"name={spec.name}-{v}-seed{seed}",
                        f"logger.group={spec.name}",
                        f"logger.tags=[{spec.name},{v}]",
                        *([f"threads={self.threads}"] if self.threads else []),
                    ]
                )
        return jobs

    def sweep(self, arguments: List[str]) -> Any:
        assert self.launcher is not None and self.config is not None
        jobs = self.job_overrides(list(arguments))
        if self.skipped:
            print(f"study {self.study}: {len(self.skipped)} finished run(s) kept, {len(jobs)} to run", flush=True)
        if not jobs:
            return []
        self.validate_batch_is_legal(jobs)  # composition errors before any job starts
        Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        # One batch: the launcher runs as many at once as it is configured to (joblib: n_jobs). A failed job
        # is reported by the study (its run has no summary.json), not raised here, so the others still run.
        return self.launcher.launch(jobs, initial_job_idx=0)
