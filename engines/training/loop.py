"""The training run behind `python -m engines.train`: one loop for every family.

    python -m engines.train vae|gan|diffusion|latent_diffusion|diffusion_gan|classifier --dataset mnist5k \
        [--out DIR] [--steps N] [--resume] [--max-minutes M] [--ledger]

Every step draws its batch and noise from a generator seeded by (seed, step), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would. Every --checkpoint-every steps it writes the
shipped model (config.json + model.safetensors), the resumable training state, training_info.json, and
appends losses to train_log.jsonl (one JSON object per line; lines past the checkpoint are dropped on resume,
so a kill -9 loses only the work since the last checkpoint). With --eval-every N, every N steps it also scores
the checkpoint's samples with the lab classifier into quality_log.jsonl, so that oscillation or collapse
during training is visible (`engines.evaluate` plots both logs), and with each feature net's share of
samples recognised over the real test digits' (`share_of_real`: what the model cards' quality bars check).

The same command runs data-parallel under `torchrun --nproc_per_node N -m engines.train ...` or `accelerate
launch [--multi_gpu] -m engines.train ...` (engines/training/distributed.py): --batch-size is the global
batch, cut into N x --grad-accum shards, each drawn from the step's generator. --push-to-hub REPO uploads the
final model with its card.

Without --out a run trains into $LAB_RUNS/<dataset>/<family> (default ~/.cache/generative-lab/runs), outside
the work tree; --ledger records it in checkpoints/<dataset>/runs.json (engines/training/ledger.py). With
--max-minutes M the command stops at a checkpoint once M minutes have passed and says how to continue.
training_info.json's "compute" records what the run cost: parameters, steps, images, wall and CPU seconds,
hardware and FLOPs counted over a real step (engines/training/compute.py).
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from engines.checkpoint import (
    LOG_NAME,
    QUALITY_LOG_NAME,
    STATE_NAME,
    TRAINING_INFO_NAME,
    WEIGHTS_NAME,
    checkpoints_dir,
    load_pretrained,
    load_training_state,
    push_to_hub,
    read_jsonl,
    save_companions,
    save_pretrained,
    save_training_state,
)
from engines.data.datasets import DATASETS, lab_dataset_of, load_dataset
from engines.engine import step_generator
from engines.errors import EngineError
from engines.measure.conditional import asked_class_shares
from engines.measure.quality import score_samples
from engines.models.classifier import feature_nets
from engines.registry import FAMILIES, STAGED, load_engine
from engines.runtime import hardware
from engines.training import compute, ledger, lineage, trainers
from engines.training.base import Shard, Trainer, parse_overrides
from engines.training.compute import Meter
from engines.training.distributed import MIXED_PRECISION, Local, make_runtime
from engines.training.timelapse import save_frame

# How a family that takes the sampler (`Family.takes_sampler`) samples when its checkpoints are scored during
# training: cheap enough to run every few hundred steps on a CPU. The others sample as the report does.
SCORING_SAMPLER = {"sampler": "ddim", "steps": 20}


def step_shards(data, batch_size: int, generator: torch.Generator, n_shards: int, mine: range,
                device: torch.device) -> list[Shard]:
    """This process's shards of the step's batch. Every process draws the same `batch_size` indices from the
    step's generator; with one shard (one process, no --grad-accum) that generator also draws the noise, as
    it always has; with several, the batch is cut into n_shards equal slices, each with a generator seeded by
    the step's generator, and `mine` says which slices are this process's. So the global batch never depends
    on the number of processes, and N processes compute what one process with --grad-accum N does."""
    idx = torch.randint(0, len(data), (batch_size,), generator=generator)
    if n_shards == 1:
        return [Shard(data.images[idx].to(device), data.labels[idx].to(device), generator)]
    seeds = torch.randint(0, 2 ** 62, (n_shards,), generator=generator)
    size = batch_size // n_shards
    return [Shard(data.images[idx[j * size:(j + 1) * size]].to(device),
                  data.labels[idx[j * size:(j + 1) * size]].to(device),
                  torch.Generator().manual_seed(int(seeds[j]))) for j in mine]


def truncate_log(path: Path, last_step: int) -> None:
    """Keep only log lines up to the checkpoint we resume from."""
    if not path.is_file():
        return
    kept = [row for row in read_jsonl(path) if row["step"] <= last_step]
    path.write_text("".join(json.dumps(row) + "\n" for row in kept))


def scoring_options(family: str) -> dict:
    """The sampling options of `family`'s checkpoint scores during training."""
    record = FAMILIES.get(family) or STAGED[family]
    return dict(SCORING_SAMPLER if record.takes_sampler else record.evaluation_options)


def score_checkpoint(family: str, out: Path, step: int, n: int, dataset: str) -> dict:
    """Quality of the checkpoint just saved, by the same engine code users run: the share of n samples the
    lab classifier of the run's dataset recognises and their Frechet distance to its test split."""
    options = scoring_options(family)
    with torch.no_grad():
        engine = load_engine(family, out)
        images = engine.sample(n, seed=0, **options)
        save_frame(images, out, step)     # the time-lapse: the same seed's first samples at every scored step
        score = {"step": step, "n": n, **options, **score_samples(images, lab_dataset_of(dataset))}
        asked = engine.asked_classes(n)   # a class-conditional model: is each sample of the class asked?
        if asked is not None:
            score["asked_class_share"] = asked_class_shares(images, asked, lab_dataset_of(dataset))
        return score


def check_scoring(args: argparse.Namespace) -> None:
    """--eval-every needs the run's dataset to have a lab classifier; say so before training, not after."""
    if not args.eval_every or not trainers()[args.family].generative:
        return
    lab = lab_dataset_of(args.dataset)
    if lab is None:
        raise EngineError(f"--eval-every scores checkpoints with the lab classifier of mnist5k or fashion; "
                          f"there is none for --dataset {args.dataset}: leave --eval-every out")
    if not (feature_nets(lab)["lenet"] / WEIGHTS_NAME).is_file():
        raise EngineError(f"--eval-every needs the {lab} lab classifier in {feature_nets(lab)['lenet']}: train it "
                          f"first (python -m engines.train classifier --dataset {args.dataset} --out ...)")


# The same images read from the user's own IDX files: the lab dataset's shipped parents fit them.
SAME_IMAGES = {"mnist-idx": "mnist", "fashion-idx": "fashion"}


def with_parent(family: str, dataset: str, overrides: dict) -> dict:
    """A hybrid's parent from the run's own data (the setting that names it and the parent are its record's
    `parent_options`): MNIST's is the setting's default (""); another lab dataset's shipped parent is named;
    the user's own data has none, which is said before training (a hybrid of a parent trained on other images
    would train, and mean nothing)."""
    record = FAMILIES.get(family) or STAGED.get(family)   # None for the classifier, which is no family
    for key, parent in (record.parent_options if record else {}).items():
        if overrides.get(key):
            continue
        lab = lab_dataset_of(dataset) or SAME_IMAGES.get(dataset)
        if lab is None:
            from_scratch = trainers()[family].from_scratch
            raise EngineError(f"{family} starts from a {parent} model trained on the same images, and none ships "
                              f"for --dataset {dataset}: train one and pass --set {key}=DIR"
                              + (f", or --set {from_scratch}" if from_scratch else ""))
        if lab != "mnist":
            overrides = {**overrides, key: str(checkpoints_dir(lab) / parent)}
    return overrides


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m engines.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("family", choices=sorted(trainers()))
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="IDX files or image folder (for the non-mnist5k datasets)")
    p.add_argument("--out", default=None,
                   help="output folder (a checkpoint folder); default $LAB_RUNS/<dataset>/<family>, outside the "
                        f"work tree (LAB_RUNS default {ledger.DEFAULT_RUNS}), or with --resume --ledger the run "
                        "the ledger records")
    p.add_argument("--steps", type=int, default=None, help="total optimisation steps (default per family)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed of the initial weights and of every step's batch "
                   "and noise (default 0; a resume keeps its run's)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=0,
                   help="score the checkpoint every N steps (a multiple of --checkpoint-every; 0 = never)")
    p.add_argument("--eval-n", type=int, default=250, help="samples per checkpoint score")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model config or hyper-parameter field, e.g. --set latent_dim=16")
    p.add_argument("--resume", action="store_true",
                   help="continue from the training state in --out; where only the shipped weights are there "
                        "(a fresh clone), warm-restart from them with a fresh optimiser")
    p.add_argument("--grad-accum", type=int, default=1, metavar="K",
                   help="accumulate gradients over K micro-batches per process and step (the batch stays "
                        "--batch-size; each process's share is cut in K)")
    p.add_argument("--mixed-precision", default="no", choices=MIXED_PRECISION,
                   help="autocast the forward passes (bf16 on CPUs or GPUs; fp16, with loss scaling, on GPUs "
                        "only); needs accelerate")
    p.add_argument("--max-minutes", type=float, default=None, metavar="M",
                   help="stop at a checkpoint (written then) once M minutes have passed; exit 0 and say how to "
                        "continue")
    p.add_argument("--stop-at", type=int, default=None, metavar="STEP",
                   help="stop at a checkpoint (written then) after this step, keeping --steps' schedule (a replay "
                        "of a run's beginning: engines.replay); continue like --max-minutes")
    p.add_argument("--ledger", action="store_true",
                   help="record the run in checkpoints/<dataset>/runs.json at every checkpoint (for the runs "
                        "behind shipped models); with --resume and no --out, continue the run recorded there")
    p.add_argument("--push-to-hub", default=None, metavar="REPO",
                   help="at the end, upload config, weights and model card to this Hugging Face Hub model "
                        "repository (needs network and `hf auth login` or HF_TOKEN)")
    return p.parse_args(argv)


def restore(args: argparse.Namespace, out: Path, trainer: Trainer, command: str,
            runtime: Local, meter: Meter) -> tuple[int, float, list[str]]:
    """Where a run starts: (step, elapsed seconds, the commands of the run so far); `meter` takes the compute
    spent so far. With --resume, from the training state if there is one (exact), else from the shipped
    weights (a warm restart, marked in the command list), else from step 0. Every process reads the same
    files; rank 0 alone reports and truncates the logs."""
    say = (lambda text: print(text, file=sys.stderr)) if runtime.is_main else (lambda text: None)
    step, elapsed, commands = 0, 0.0, [command]
    previous = out / TRAINING_INFO_NAME
    info = json.loads(previous.read_text()) if args.resume and previous.is_file() else None
    if info is not None:
        commands = info.get("commands", [info["command"]]) + commands
        meter.resume_from(info.get("compute"))
        trainer.parent_info = info.get("parent", trainer.parent_info)   # the parent it was built on, not today's
    if args.resume and (out / STATE_NAME).exists():
        try:
            meta = load_training_state(out, trainer.modules, trainer.optimizers)
        except RuntimeError as e:   # a --set option given now that changes the network's shapes
            raise EngineError(f"the training state in {out} does not fit this command's settings "
                              f"({str(e).splitlines()[0]}): a resume keeps the run's network, so drop the --set "
                              f"options that change it, or start a new run in another --out") from e
        runtime.load_state(meta.get("runtime", {}))
        step, elapsed = meta["step"], meta["elapsed_s"]
        meter.cpu_before = meta.get("cpu_s", meter.cpu_before)  # the state is written first: it is the exact one
        say(f"resuming {args.family} from step {step} ({elapsed / 60:.1f} min trained so far)")
    elif info is not None and (out / WEIGHTS_NAME).is_file():
        step, elapsed = info["step"], info["wall_time_s"]
        shipped = load_pretrained(type(trainer.export()), type(trainer.config), out)
        try:
            trainer.warm_start(shipped, step, out)
        except RuntimeError as e:
            raise EngineError(f"the weights in {out} do not match this run's settings ({e}); repeat the "
                              f"--set options of the original command") from e
        commands[-1] += "  # warm restart from the shipped weights: optimiser state was not kept"
        say(f"warm restart of {args.family} from the shipped weights at step {step}: fresh optimiser")
    elif args.resume:
        say(f"nothing to resume in {out}: starting from step 0")
    if runtime.is_main:
        truncate_log(out / LOG_NAME, step)
        truncate_log(out / QUALITY_LOG_NAME, step)
    return step, elapsed, commands


def write_checkpoint(args: argparse.Namespace, out: Path, trainer: Trainer, runtime: Local, step: int,
                     elapsed: float, commands: list[str], train_images: int, compute: dict) -> None:
    """The shipped model, the resumable state and training_info.json, each replaced atomically."""
    save_pretrained(trainer.export(), out)
    save_companions(out, trainer.companions())
    runtime_state = runtime.state()
    save_training_state(out, trainer.modules, trainer.optimizers,
                        {"step": step, "elapsed_s": elapsed, "cpu_s": compute["cpu_s"],
                         **({"runtime": runtime_state} if runtime_state else {})})
    info = {
        "family": args.family, "dataset": args.dataset, "step": step, "total_steps": trainer.steps,
        "batch_size": trainer.batch_size, "lr": trainer.lr, "seed": args.seed,
        "processes": runtime.world_size, "grad_accum": args.grad_accum, "mixed_precision": runtime.mixed_precision,
        "wall_time_s": round(elapsed, 1), "hardware": hardware(), "torch": torch.__version__,
        "command": commands[0], "commands": commands, "train_images": train_images, "compute": compute,
        **({"parent": trainer.parent_info} if trainer.parent_info else {}), **trainer.extra_info(),
    }
    temporary = out / (TRAINING_INFO_NAME + ".tmp")   # a kill mid-write leaves the previous record whole
    temporary.write_text(json.dumps(info, indent=1) + "\n")
    temporary.replace(out / TRAINING_INFO_NAME)


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def checkpoint(args: argparse.Namespace, out: Path, trainer: Trainer, runtime: Local, step: int,
               elapsed: float, commands: list[str], train_images: int, bar: tqdm, meter: Meter) -> float:
    """Rank 0 writes the checkpoint and, every --eval-every steps, scores it (and with --ledger records the
    run); the other processes wait. Returns the seconds spent scoring (not training time)."""
    runtime.check_in_sync(trainer.modules)
    compute = meter.record(trainer, step, elapsed, meter.cpu_per_rank(runtime))  # a collective: every rank
    scoring_s = 0.0
    if runtime.is_main:
        write_checkpoint(args, out, trainer, runtime, step, elapsed, commands, train_images, compute)
        if args.eval_every and step % args.eval_every == 0 and trainer.generative:
            scoring_started, scoring_cpu = time.time(), time.process_time()
            row = score_checkpoint(args.family, out, step, args.eval_n, args.dataset)
            append_jsonl(out / QUALITY_LOG_NAME, row)
            bar.write(f"step {step}: {row}")
            scoring_s = time.time() - scoring_started
            meter.cpu_excluded += time.process_time() - scoring_cpu
        if args.ledger:
            ledger.record_run(args.dataset, args.family, out, commands[-1], continue_command(args, out, commands[-1]),
                              step, trainer.steps)
    runtime.wait()
    return scoring_s


def continue_command(args: argparse.Namespace, out: Path, command: str) -> str:
    """The command that continues this run: this one (its remarks dropped), with its folder and --resume."""
    command = command.split("  #")[0]
    if args.out is None:
        command += f" --out {shlex.quote(str(out))}"
    return command if args.resume else command + " --resume"


def inherit_settings(args: argparse.Namespace, out: Path) -> None:
    """A resume continues the run as it was set up: the --set options, --steps, --batch-size, --lr and --seed
    recorded in its training_info.json fill in whatever this command leaves out (an option given now wins:
    --steps to train longer, --set for a schedule; one that changes the network is refused in `restore`)."""
    previous = out / TRAINING_INFO_NAME
    if not previous.is_file():
        return
    info = json.loads(previous.read_text())
    given = {pair.partition("=")[0] for pair in args.overrides}
    recorded = compute.recorded_args(info).overrides
    args.overrides = [pair for pair in recorded if pair.partition("=")[0] not in given] + args.overrides
    for name, key in (("steps", "total_steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed")):
        if getattr(args, name) is None:
            setattr(args, name, info.get(key))


def run_folder(args: argparse.Namespace) -> Path:
    """--out; else, for --resume --ledger, the run the ledger records; else $LAB_RUNS/<dataset>/<family>."""
    if args.out is not None:
        return Path(args.out)
    if args.ledger and args.resume:
        return ledger.resume_folder(args.dataset, args.family)
    return ledger.default_run(args.dataset, args.family)


def out_of_time(args: argparse.Namespace, began: float, runtime: Local) -> bool:
    """Whether --max-minutes have passed since the command began, as every rank agrees (rank clocks differ:
    one all-reduce per step decides, so that all ranks stop at the same step)."""
    if args.max_minutes is None:
        return False
    late = float(time.time() - began >= args.max_minutes * 60)
    return runtime.mean({"late": late})["late"] > 0


def check_shards(args: argparse.Namespace, trainer: Trainer, runtime: Local) -> int:
    """How many shards each step's batch is cut into: processes x --grad-accum, which must divide it."""
    if args.grad_accum < 1:
        raise EngineError(f"--grad-accum must be 1 or more, got {args.grad_accum}")
    n_shards = runtime.world_size * args.grad_accum
    if trainer.batch_size % n_shards:
        raise EngineError(f"--batch-size {trainer.batch_size} (the global batch) must be a multiple of processes "
                          f"x --grad-accum = {runtime.world_size} x {args.grad_accum}")
    return n_shards


def train(args: argparse.Namespace, command: str) -> Path:
    runtime = make_runtime(args.mixed_precision)
    try:
        return run(args, command, runtime)
    finally:
        runtime.close()


def prepare(args: argparse.Namespace, command: str, runtime: Local) -> tuple[Path, Trainer]:
    """The run's folder and its trainer, placed on the runtime; refusals said before any training."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = run_folder(args)
    if args.resume:
        inherit_settings(args, out)
    args.seed = 0 if args.seed is None else args.seed
    check_scoring(args)
    overrides = with_parent(args.family, args.dataset, parse_overrides(args.overrides))
    if (out / STATE_NAME).exists() and not args.resume:
        raise EngineError(f"{out} already holds a training run: pass --resume to continue it, or choose "
                          f"another --out")
    torch.manual_seed(args.seed)  # initial weights
    trainer = trainers()[args.family](overrides, lr=args.lr, batch_size=args.batch_size, steps=args.steps)
    record = FAMILIES.get(args.family) or STAGED.get(args.family)
    parent = lineage.parent_directory(trainer.hparams, record.parent_options) if record else None
    trainer.parent_info = lineage.parent_record(*parent) if parent else None   # a resume keeps the run's own
    if args.ledger:
        ledger.read_ledger(args.dataset)   # refuses a dataset with no shipped models, or a broken ledger, now
    if args.ledger and args.resume:
        shipped = ledger.shipped_folder(args.dataset, args.family)
        ledger.check_run_present(args.dataset, args.family, out, trainer.warm_start_refusal(shipped), command)
    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if args.out is None:
            print(f"run folder: {out}", file=sys.stderr)
    trainer.place(runtime)
    return out, trainer


def run(args: argparse.Namespace, command: str, runtime: Local) -> Path:
    began = time.time()   # --max-minutes counts from here
    out, trainer = prepare(args, command, runtime)
    n_shards = check_shards(args, trainer, runtime)
    data = load_dataset(args.dataset, "train", args.data_dir)
    if runtime.world_size > 1:
        command += f"  # on {runtime.world_size} processes (torchrun / accelerate launch)"
    meter = Meter()
    step, elapsed, commands = restore(args, out, trainer, command, runtime, meter)
    runtime.broadcast(trainer.modules)
    mine = range(runtime.rank * args.grad_accum, (runtime.rank + 1) * args.grad_accum)

    if args.stop_at is not None and step >= args.stop_at:
        if runtime.is_main:
            print(f"{out} is at step {step}, past --stop-at {args.stop_at}: nothing to train", file=sys.stderr)
        return out
    started, meter.cpu_started = time.time() - elapsed, time.process_time()
    with tqdm(total=trainer.steps, initial=step, desc=args.family, dynamic_ncols=True,
              disable=not runtime.is_main) as bar:
        while step < trainer.steps:
            generator = step_generator(args.seed, step)
            shards = step_shards(data, trainer.batch_size, generator, n_shards, mine, runtime.device)
            losses = meter.train_step(trainer, shards, step, runtime)
            runtime.end_step()
            step += 1
            bar.update(1)
            if step % args.log_every == 0 or step == trainer.steps:
                losses = runtime.mean(losses)
                if runtime.is_main:
                    append_jsonl(out / LOG_NAME, {"step": step, "time_s": round(time.time() - started, 2), **losses})
                    bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
            stop = (out_of_time(args, began, runtime) or step == args.stop_at) and step < trainer.steps
            if stop or step % args.checkpoint_every == 0 or step == trainer.steps:
                started += checkpoint(args, out, trainer, runtime, step, time.time() - started, commands, len(data),
                                      bar, meter)
            if stop:
                if runtime.is_main:
                    why = f"--stop-at {step}" if step == args.stop_at else f"--max-minutes {args.max_minutes:g}"
                    bar.write(f"stopped after {why} at step {step} of {trainer.steps} (checkpoint written): "
                              f"continue with\n  {continue_command(args, out, command)}", file=sys.stderr)
                return out
    if runtime.is_main:
        trainer.finish(out, data, commands[-1])
    if args.push_to_hub and runtime.is_main:
        push(args.push_to_hub, args.family, out, trainer)
    return out


def hub_card(family: str, out: Path) -> str:
    """The model card to publish: the folder's README.md where `python -m engines.model_card` wrote one, else
    one written now from training_info.json (without scores: engines.evaluate measures shipped checkpoints)."""
    if (out / "README.md").is_file():
        return (out / "README.md").read_text()
    from engines.measure.model_card import card

    return card(family, json.loads((out / TRAINING_INFO_NAME).read_text()), None)


def push(repo_id: str, family: str, out: Path, trainer: Trainer) -> None:
    """Upload the final model (config, weights) and its card to the Hub (rank 0, after the last checkpoint)."""
    try:
        url = push_to_hub(trainer.export(), repo_id, hub_card(family, out), out)
    except (OSError, ValueError) as e:  # HTTP errors, offline mode, no token, a malformed repo id
        raise EngineError(f"the run is saved in {out}, but pushing it to {repo_id} failed: {e}. To retry, repeat "
                          f"the command with --resume: it trains no further and pushes again") from e
    print(f"pushed {out} to {url}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        train(args, "python -m engines.train " + shlex.join(argv))
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
