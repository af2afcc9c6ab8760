"""Everything where etafinder meets the user's files: the model file, checkpoints, data files.

With :mod:`etafinder.report` this is the only module that touches the filesystem, and it only
*reads*: no ``__pycache__`` beside the model file (or its siblings), nothing written anywhere.

:func:`load_problem` turns ``etafinder probe PATH.py [--checkpoint F] [--data F] ...`` (contract
§1, §3) into a :class:`LoadedProblem`. Every user mistake becomes an
:class:`~etafinder.errors.InputError` whose message names the file or option and says "actual vs
expected", with a hint; exceptions raised by the user's own code are chained (``from exc``) so
that ``--debug`` shows their traceback.

What happens, in order:

1. The options are checked (``--dtype``, ``--device``, ``--samples``, ``--seed``, the files named
   by ``--checkpoint``/``--data``, ``--loss``) before any user code runs.
2. The model file is imported under a unique module name, with its folder first on ``sys.path``,
   ``sys.argv = [PATH]`` (so a top-level ``argparse`` sees no etafinder flags), no bytecode
   written and torch's default dtype at float32. Global state is restored afterwards:
   ``sys.path``, ``sys.argv``, ``sys.dont_write_bytecode``, the default dtype, and the CPU random
   generators of ``random``, numpy and torch. Sibling modules imported from the model's folder
   are dropped from ``sys.modules``, so that another model folder's ``helpers.py`` is its own.
3. ``random``, numpy and torch are seeded with ``seed``, then ``model()`` is called; they are
   seeded again, then ``data()`` is called (unless ``--data``). Both run under the default dtype
   the import left (float32 unless the model file itself changes it: exactly what the user's own
   training gets).
4. etafinder works on a deep copy of the returned module, so a ``model()`` that returns a cached
   or global instance is never modified: the copy is converted to ``--dtype`` (before the
   checkpoint is loaded, so a float64 checkpoint keeps its precision), the checkpoint is loaded
   strictly into it, and it is moved to ``--device``.
5. The data is collected into ``(inputs, targets)`` tensors, converted (floating tensors to the
   model's dtype; :func:`_convert_targets` says what happens to integer targets), validated
   (sample counts, emptiness, NaN/inf), split into the seeded probe set and the rest, and moved
   to the device.
6. A trial forward pass on the first :data:`TRIAL_SAMPLES` probe samples, on a throwaway deep
   copy in eval mode under ``torch.no_grad()``, checks that the model runs on the data and that
   its output fits the loss and the targets (class indices are range-checked over **all**
   targets).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import importlib.util
import inspect
import itertools
import numbers
import os
import pickle
import random
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .errors import InputError
from .losses import BUILTIN_LOSSES, Loss, resolve_loss
from .problem import Problem

#: The ``--dtype`` values etafinder computes in.
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Checkpoint suffixes read with ``torch.load`` (``.ckpt``: Lightning; ``.bin``: Hugging Face).
TORCH_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
#: Keys under which a checkpoint dict may wrap the state_dict, tried in this order.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")
#: ``--data`` suffixes.
DATA_SUFFIXES = (".pt", ".pth", ".npz")
#: Samples in the trial forward pass.
TRIAL_SAMPLES = 2
#: How many keys/values an error message lists before "…".
LISTED = 5
#: Tolerance on the row sums of cross-entropy probability targets.
PROBABILITY_ATOL = 1e-3

_module_counter = itertools.count()


@dataclass(frozen=True)
class LoadedProblem:
    """A loaded, validated problem, and what it came from.

    Attributes:
        problem: the probe set, model (etafinder's own converted copy), loss and forward hook,
            on the requested device and dtype.
        rest_inputs: the samples not in the probe set (possibly 0), same device/dtype; used for λ₀'s
            sampling-uncertainty figure.
        rest_targets: their targets.
        info: plain JSON-able provenance for the report (see :func:`load_problem`).
    """

    problem: Problem
    rest_inputs: Tensor
    rest_targets: Tensor
    info: dict


def load_problem(
    model: str,
    *,
    checkpoint: str | None = None,
    data: str | None = None,
    samples: int | None = None,
    seed: int = 0,
    dtype: str | None = None,
    device: str = "cpu",
    loss: str | Callable[[Tensor, Tensor], Tensor] | None = None,
    trust_checkpoint: bool = False,
    warn: Callable[[str], None] | None = None,
) -> LoadedProblem:
    """Import a model file, build its model and data, and validate them (contract §1, §3).

    Args:
        model: ``PATH.py``, ``PATH.py:factory``, ``package.module`` or ``package.module:factory``.
        checkpoint: ``--checkpoint``: a ``.pt``/``.pth``/``.bin``/``.ckpt`` or ``.safetensors`` file
            loaded strictly into the model.
        data: ``--data``: a ``.pt`` (dict with ``x``, ``y``) or ``.npz`` (arrays ``x``, ``y``) used
            instead of ``data()``.
        samples: ``--samples``: size of the seeded random probe set (``None``: all samples).
        seed: ``--seed``: seeds ``random``, numpy and torch before ``model()`` and ``data()``,
            and the probe-set draw.
        dtype: ``--dtype``: ``"float32"`` or ``"float64"``; ``None`` keeps the model's own dtype.
        device: ``--device``: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, …
        loss: ``--loss``: ``"mse"`` or ``"cross_entropy"`` (or, from Python, a callable); overrides
            the model file's ``loss``.
        trust_checkpoint: ``--trust-checkpoint``: allow unpickling a checkpoint that holds pickled
            code (``torch.load(weights_only=False)``), after calling ``warn``.
        warn: receives warnings (one sentence each); default :func:`warnings.warn`.

    Returns:
        The problem, the rest of the data and an ``info`` dict with the keys ``model``,
        ``model_file``, ``model_sha256``, ``factory``, ``checkpoint``, ``checkpoint_sha256``,
        ``checkpoint_format``, ``checkpoint_prefix_stripped``, ``checkpoint_keys_ignored``,
        ``checkpoint_trusted_pickle``, ``data_source``, ``data_sha256``, ``data_form``,
        ``total_samples``, ``samples``, ``samples_requested``, ``samples_note``, ``seed``,
        ``dtype``, ``device``, ``loss``, ``targets_converted``, ``num_params``, ``forward_hook``.

    Raises:
        InputError: for every problem with the options, the model file, its functions, the
            checkpoint or the data.
    """
    warn = warn or _default_warn
    # Options first: they fail fast, before any user code runs.
    target_dtype = _parse_dtype(dtype)
    dev = _parse_device(device)
    samples = _check_samples(samples)
    seed = _check_seed(seed)
    override = None if loss is None else _loss_spec(loss, "--loss")
    spec = _parse_model_spec(model)
    ckpt_path = None if checkpoint is None else _existing_file("--checkpoint", checkpoint)
    data_path = None if data is None else _existing_file("--data", data)

    info: dict[str, Any] = {"model": str(model), "factory": spec.factory, "seed": seed}
    with _isolated(spec):
        module, model_file, model_sha = _import(spec)
        info.update(model_file=model_file, model_sha256=model_sha)
        where = spec.label
        factory = _factory(module, spec)
        data_fn = None if data_path is not None else _data_function(module, where)
        forward = _forward_hook(module, where)
        loss_fn = _resolve(override if override is not None else _module_loss(module, where))

        _seed_all(seed)
        built = _call(where, f"{spec.factory}()", factory)
        net = _own_copy(built, where, spec.factory)
        del built
        if target_dtype is not None:
            net = net.to(dtype=target_dtype)
        if ckpt_path is not None:
            info.update(_load_checkpoint(net, ckpt_path, checkpoint, trust_checkpoint, warn))
        else:
            info.update(
                checkpoint=None,
                checkpoint_sha256=None,
                checkpoint_format=None,
                checkpoint_prefix_stripped=None,
                checkpoint_keys_ignored=0,
                checkpoint_trusted_pickle=False,
            )
        net = net.to(device=dev)
        model_dtype = _model_dtype(net)

        if data_path is not None:
            source = f"--data {data}"
            x, y, form = _read_data_file(data_path, source)
            info.update(data_source=str(data), data_sha256=_sha256(data_path), data_form=form)
        else:
            source = f"{where}, data()"
            _seed_all(seed)
            raw = _call(where, "data()", data_fn)
            x, y, form = _collect(raw, source)
            info.update(data_source="data()", data_sha256=None, data_form=form)

        x = x.to(model_dtype) if x.is_floating_point() else x
        y, converted = _convert_targets(y, loss_fn, model_dtype, source)
        _check_data(x, y, source)
        total = int(x.shape[0])
        probe_idx, rest_idx = _split(total, samples, seed)
        px, py = x.index_select(0, probe_idx).to(dev), y.index_select(0, probe_idx).to(dev)
        rx, ry = x.index_select(0, rest_idx).to(dev), y.index_select(0, rest_idx).to(dev)

        _trial(net, forward, loss_fn, px, py, y, where, source)

    n = int(px.shape[0])
    info.update(
        total_samples=total,
        samples=n,
        samples_requested=samples,
        samples_note=(
            None
            if samples is None or samples <= total
            else f"the data has only {total} samples (asked for {samples}); using all of them"
        ),
        dtype=str(model_dtype).removeprefix("torch."),
        device=str(dev),
        loss=loss_fn.name,
        targets_converted=converted,
        num_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
        forward_hook=forward is not None,
    )
    problem = Problem(model=net, inputs=px, targets=py, loss=loss_fn, forward=forward)
    return LoadedProblem(problem=problem, rest_inputs=rx, rest_targets=ry, info=info)


# ------------------------------------------------------------------------------------- options ----


def _default_warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``--dtype`` as a torch dtype (``None``: keep the model's own)."""
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise InputError(
        f"--dtype {dtype}: unsupported dtype; expected float32 or float64",
        "etafinder computes curvature in float32 (the default) or float64 (more accurate).",
    )


def _parse_device(device: str | torch.device) -> torch.device:
    """``--device`` as a torch device that exists on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(
            f"--device {device}: not a torch device; expected cpu, cuda, cuda:N, mps, …",
            "Use --device cpu, or --device cuda on a machine with a CUDA build of torch.",
        ) from None
    hint = "Use --device cpu, or run on a machine where that device is available."
    if dev.type == "meta":
        raise InputError(
            f"--device {device}: the meta device holds no data; expected a real device", hint
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
            raise InputError(
                f"--device {device}: CUDA is not available here "
                f"(torch {torch.__version__}, {build})",
                hint,
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise InputError(
                f"--device {device}: no such GPU; this machine has {count} "
                f"(cuda:0 … cuda:{count - 1})",
                hint,
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"--device {device}: MPS is not available here", hint)
    elif dev.type != "cpu":
        try:
            torch.empty(0, device=dev)
        except Exception as exc:
            raise InputError(
                f"--device {device}: not available here ({_describe(exc)})", hint
            ) from None
    return dev


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (numpy integers too, bools not), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _check_samples(samples: Any) -> int | None:
    if samples is None:
        return None
    n = _whole(samples)
    if n is None or n <= 0:
        raise InputError(
            f"--samples {samples}: expected a positive whole number of samples",
            "Leave --samples out to use all the data, or pass e.g. --samples 256.",
        )
    return n


def _check_seed(seed: Any) -> int:
    s = _whole(seed)
    if s is None or not 0 <= s < 2**63:
        raise InputError(
            f"--seed {seed}: expected a whole number in [0, 2**63)", "The default is --seed 0."
        )
    return s


def _existing_file(option: str, path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"{option} {path}: file not found",
            "Check the path"
            + ("." if p.is_absolute() else f" (relative to the current directory, {os.getcwd()})."),
        )
    if not p.is_file():
        raise InputError(
            f"{option} {path}: is a directory, not a file", f"Pass the file itself to {option}."
        )
    return p


# --------------------------------------------------------------------------------- model file ----


@dataclass(frozen=True)
class _ModelSpec:
    """What ``etafinder probe MODEL`` names: a file or a dotted module, and the factory's name."""

    kind: str  # "file" | "module"
    target: str  # the path as given, or the dotted name
    factory: str

    @property
    def label(self) -> str:
        return f"model file {self.target}" if self.kind == "file" else f"model module {self.target}"


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


def _parse_model_spec(model: str) -> _ModelSpec:
    if not isinstance(model, str) or not model:
        raise InputError(
            f"model {model!r}: expected PATH.py, PATH.py:factory or package.module",
            "For example: etafinder probe examples/mlp.py",
        )
    target, factory = model, "model"
    head, sep, tail = model.rpartition(":")
    if sep and not any(
        c in tail for c in "/\\."
    ):  # "x.py:name" (a Windows "C:\x.py" is left whole)
        target, factory = head, tail
        if not factory.isidentifier():
            raise InputError(
                f"model {model}: factory name {factory!r} is not a Python identifier",
                "Write PATH.py:factory, e.g. model.py:small_model (without the parentheses).",
            )
    path = Path(target)
    looks_like_file = target.endswith(".py") or "/" in target or os.sep in target or path.exists()
    if looks_like_file or not _DOTTED.fullmatch(target):
        spec = _ModelSpec("file", target, factory)
        if not path.exists():
            raise InputError(
                f"model file {target}: file not found",
                "Pass PATH.py (a Python file defining model()) or an importable package.module.",
            )
        if path.is_dir():
            raise InputError(
                f"model file {target}: is a directory; expected a .py file",
                "Pass the Python file that defines model() and data().",
            )
        if path.suffix != ".py":
            raise InputError(
                f"model file {target}: not a .py file (suffix {path.suffix or 'none'!r}); "
                "expected a Python source file",
                "A checkpoint goes to --checkpoint FILE and data to --data FILE; the model file "
                "is the .py that defines model().",
            )
        return spec
    return _ModelSpec("module", target, factory)


@contextlib.contextmanager
def _isolated(spec: _ModelSpec) -> Iterator[None]:
    """Run user code with the model's folder on ``sys.path``, then restore every global touched."""
    folder = Path(spec.target).resolve().parent if spec.kind == "file" else Path.cwd()
    saved_path = list(sys.path)
    saved_argv = sys.argv
    saved_bytecode = sys.dont_write_bytecode
    saved_dtype = torch.get_default_dtype()
    saved_rng = (
        random.getstate(),
        np.random.get_state(),  # noqa: NPY002 (the user's global RNG)
        torch.get_rng_state(),
    )
    saved_modules = set(sys.modules)
    sys.path.insert(0, str(folder))
    sys.argv = [spec.target]
    sys.dont_write_bytecode = True  # no __pycache__ beside the model file's siblings
    torch.set_default_dtype(torch.float32)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.argv = saved_argv
        sys.dont_write_bytecode = saved_bytecode
        torch.set_default_dtype(saved_dtype)
        random.setstate(saved_rng[0])
        np.random.set_state(saved_rng[1])  # noqa: NPY002
        torch.set_rng_state(saved_rng[2])
        if spec.kind == "file":
            for name in set(sys.modules) - saved_modules:
                if _is_sibling(sys.modules.get(name), name, folder):
                    del sys.modules[name]


def _is_sibling(module: ModuleType | None, name: str, folder: Path) -> bool:
    """Whether ``module`` was found through ``folder`` as a sys.path entry (``folder/top[.py]``)."""
    file = getattr(module, "__file__", None)
    if not file or name.startswith("_etafinder_model_"):
        return False
    top = name.split(".", 1)[0]
    f = Path(file).resolve()
    return f == folder / f"{top}.py" or (folder / top) in f.parents


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the global RNG user code draws from)
    torch.manual_seed(seed)


def _import(spec: _ModelSpec) -> tuple[ModuleType, str | None, str | None]:
    """Import the model file or module; returns ``(module, file, sha256 of the file)``."""
    if spec.kind == "module":
        return _import_dotted(spec)
    path = Path(spec.target).resolve()
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"{spec.label}: cannot be read ({_describe(exc)})", "Check the file's permissions."
        ) from None
    try:
        # Compiled here, never cached: no __pycache__ beside the file, and the hash is of what ran.
        code = compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise InputError(
            f"{spec.label}: syntax error at line {exc.lineno}: {exc.msg}",
            f"Fix the Python syntax ({path.name}:{exc.lineno}); try `python {spec.target}`.",
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise InputError(
            f"{spec.label}: not valid Python source ({_describe(exc)})",
            "Pass the .py file that defines model().",
        ) from None
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_etafinder_model_{next(_module_counter)}_{stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look a class's module up by name
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise InputError(
            f"{spec.label}: importing it raised {_describe(exc)}{_user_line(exc, str(path))}",
            _user_hint(
                exc,
                f"Fix the error at import time; `python {spec.target}` shows the "
                "traceback, or pass --debug.",
            ),
        ) from exc
    return module, spec.target, hashlib.sha256(source).hexdigest()


def _import_dotted(spec: _ModelSpec) -> tuple[ModuleType, str | None, str | None]:
    try:
        module = importlib.import_module(spec.target)
    except ModuleNotFoundError as exc:
        if exc.name and (spec.target == exc.name or spec.target.startswith(exc.name + ".")):
            raise InputError(
                f"{spec.label}: no module named {spec.target!r} (looked in the current directory "
                "and sys.path); expected PATH.py or an importable package.module",
                "Check the spelling, install the package, or pass the path to the .py file.",
            ) from None
        raise InputError(
            f"{spec.label}: importing it raised {_describe(exc)}",
            "Install the missing dependency, or pass --debug for the traceback.",
        ) from exc
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"{spec.label}: importing it raised {_describe(exc)}",
            _user_hint(exc, "Fix the error at import time, or pass --debug for the traceback."),
        ) from exc
    file = getattr(module, "__file__", None)
    sha = _sha256(Path(file)) if file and Path(file).is_file() else None
    return module, file, sha


def _factory(module: ModuleType, spec: _ModelSpec) -> Callable[[], Any]:
    name = spec.factory
    obj = getattr(module, name, None)
    if obj is None:
        raise InputError(
            f"{spec.label}: defines no `{name}()`; expected a function returning a torch.nn.Module",
            f"Add `def {name}(): return MyNet()` to the file"
            + ("." if name == "model" else ", or name an existing factory after the colon."),
        )
    if isinstance(obj, nn.Module):
        raise InputError(
            f"{spec.label}: `{name}` is {_a(obj)} instance; expected a function "
            "returning a fresh torch.nn.Module",
            f"Wrap it: `def {name}(): return {type(obj).__name__}(...)`, so that every call builds "
            "a fresh model.",
        )
    if not callable(obj):
        raise InputError(
            f"{spec.label}: `{name}` is {_a(obj)}; expected a function returning a torch.nn.Module",
            f"Define `def {name}(): ...` returning the model.",
        )
    return obj


def _data_function(module: ModuleType, where: str) -> Callable[[], Any]:
    obj = getattr(module, "data", None)
    if obj is None:
        raise InputError(
            f"{where}: defines no `data()` and no --data FILE was given; expected one of them",
            "Add `def data(): return inputs, targets` to the model file, or pass --data FILE "
            "(.pt dict with x, y, or .npz with arrays x, y).",
        )
    if not callable(obj):
        raise InputError(
            f"{where}: `data` is {_a(obj)}; expected a function",
            "Define `def data(): return inputs, targets` (or a Dataset or DataLoader).",
        )
    return obj


def _forward_hook(module: ModuleType, where: str) -> Callable[[nn.Module, Tensor], Tensor] | None:
    fn = getattr(module, "forward", None)
    if fn is None:
        return None
    hint = (
        'Define `def forward(model, x): return model(x)["logits"]` (or similar) returning the '
        "tensor the loss takes, or remove `forward` to use model(x)."
    )
    if not callable(fn):
        raise InputError(
            f"{where}: `forward` is {_a(fn)}; expected a function forward(model, x)",
            hint,
        )
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise InputError(
            f"{where}: `forward{inspect.signature(fn)}` cannot be called as "
            "forward(model, x); expected two positional arguments",
            hint,
        ) from None
    except ValueError:  # no signature to inspect (a builtin); the trial pass will tell
        pass
    return fn


def _module_loss(module: ModuleType, where: str) -> str | Callable | None:
    spec = getattr(module, "loss", None)
    return None if spec is None else _loss_spec(spec, f"{where}: `loss`")


def _loss_spec(spec: Any, where: str) -> str | Callable:
    """Validate a loss spec (``--loss`` or the file's ``loss``) with a message naming its origin."""
    if isinstance(spec, str):
        if spec not in BUILTIN_LOSSES:
            raise InputError(
                f"{where} {spec!r}: unknown loss; expected 'mse' or 'cross_entropy'",
                "Or define `loss` in the model file as a callable (output, target) -> mean scalar.",
            )
        return spec
    if not callable(spec):
        raise InputError(
            f"{where} is {_a(spec)}; expected 'mse', 'cross_entropy' or a callable",
            'Define `loss = "cross_entropy"` or a function (output, target) -> scalar tensor.',
        )
    # torch's own functions with their default (mean) reduction are the built-ins, in closed form.
    if spec is F.mse_loss:
        return "mse"
    if spec is F.cross_entropy:
        return "cross_entropy"
    return spec


def _resolve(spec: str | Callable | None) -> Loss:
    return resolve_loss(spec)  # specs were validated by _loss_spec


def _call(where: str, what: str, fn: Callable, *args: Any) -> Any:
    """Call user code; its exceptions become an InputError naming the file and the function."""
    try:
        return fn(*args)
    except (Exception, SystemExit) as exc:
        file = getattr(getattr(fn, "__code__", None), "co_filename", "")
        raise InputError(
            f"{where}: {what} raised {_describe(exc)}{_user_line(exc, file)}",
            _user_hint(exc, f"Fix {what} in the model file; pass --debug for the full traceback."),
        ) from exc


def _own_copy(built: Any, where: str, factory: str) -> nn.Module:
    """Validate what the factory returned and make etafinder's private copy of it."""
    if not isinstance(built, nn.Module):
        raise InputError(
            f"{where}: {factory}() returned {_a(built)}; expected a torch.nn.Module",
            f"Return the model itself from {factory}(), e.g. `return nn.Sequential(...)`.",
        )
    params = list(built.parameters())
    if any(nn.parameter.is_lazy(p) for p in params):
        raise InputError(
            f"{where}: {factory}() returned {_a(built)} with uninitialised lazy "
            "parameters; expected materialised parameters",
            f"Call the model once on a sample batch inside {factory}() (as your training does), "
            "so its lazy layers are initialised.",
        )
    trainable = [p for p in params if p.requires_grad]
    if not trainable:
        raise InputError(
            f"{where}: {factory}() returned {_a(built)} with no trainable parameters "
            f"({len(params)} parameter tensors, none with requires_grad=True); expected at least "
            "one",
            "λ₀ is taken over the trainable parameters; leave requires_grad on for the ones "
            "training updates.",
        )
    if any(not p.is_floating_point() for p in trainable):
        raise InputError(
            f"{where}: {factory}() returned a model with non-floating trainable "
            "parameters; expected float parameters",
            "Keep trainable weights floating-point (float32 or float64).",
        )
    try:
        # A factory may return a cached or global instance: the user's object is never modified.
        return copy.deepcopy(built)
    except Exception as exc:
        raise InputError(
            f"{where}: the {type(built).__name__} returned by {factory}() cannot be deep-copied "
            f"({_describe(exc)}); expected a copyable torch.nn.Module",
            "etafinder evaluates a private copy of the model; avoid attributes such as open files, "
            "locks or generators on the module.",
        ) from exc


def _model_dtype(net: nn.Module) -> torch.dtype:
    for p in net.parameters():
        if p.requires_grad and p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


# --------------------------------------------------------------------------------- checkpoint ----


def _load_checkpoint(
    net: nn.Module, path: Path, given: str, trust: bool, warn: Callable[[str], None]
) -> dict:
    """Read a checkpoint and load it strictly into ``net``; returns the ``checkpoint_*`` info."""
    label = f"--checkpoint {given}"
    sha = _sha256(path)
    state, fmt, trusted = _read_checkpoint(path, label, trust, warn)
    state, prefix, ignored = _match_keys(state, net, label)
    try:
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise InputError(
            f"{label}: does not load into the model ({_describe(exc)})",
            "Was it saved from a different model? etafinder loads checkpoints "
            "strictly into model().",
        ) from None
    return {
        "checkpoint": given,
        "checkpoint_sha256": sha,
        "checkpoint_format": fmt,
        "checkpoint_prefix_stripped": prefix,
        "checkpoint_keys_ignored": ignored,
        "checkpoint_trusted_pickle": trusted,
    }


def _read_checkpoint(
    path: Path, label: str, trust: bool, warn: Callable[[str], None]
) -> tuple[dict, str, bool]:
    """``(state_dict, format, trusted)``; never unpickles code unless ``trust`` is set."""
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu")), "safetensors", False
        except Exception as exc:
            raise InputError(
                f"{label}: not a readable safetensors file ({_describe(exc)})",
                "The file may be truncated or corrupt; save it again with "
                "safetensors.torch.save_file(model.state_dict(), FILE).",
            ) from None
    if suffix not in TORCH_CHECKPOINT_SUFFIXES:
        raise InputError(
            f"{label}: unsupported checkpoint type {suffix or 'without suffix'!r}; expected "
            + ", ".join(TORCH_CHECKPOINT_SUFFIXES)
            + f" or {SAFETENSORS_SUFFIX}",
            "Save the weights with torch.save(model.state_dict(), 'model.pt') or safetensors.",
        )
    trusted = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # torch's pickle-protocol notes are not the user's concern
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trust:
            raise InputError(
                f"{label}: {_refusal(str(exc))}",
                "If you trust this file, pass --trust-checkpoint (unpickling can run arbitrary "
                "code). Better: save only the weights, torch.save(model.state_dict(), FILE), or "
                "use safetensors.",
            ) from None
        warn(
            f"--trust-checkpoint: unpickling {path.name} with torch.load(weights_only=False), "
            "which allows arbitrary code execution; do this only for files you trust."
        )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc2:
            raise InputError(
                f"{label}: cannot be unpickled ({_describe(exc2)})",
                "The file needs code that is not importable here, or is corrupt.",
            ) from None
        trusted = True
    except Exception as exc:
        raise InputError(
            f"{label}: cannot be read as a torch file ({_describe(exc)}); expected "
            "a file written by torch.save",
            "The file may be truncated or corrupt, or of another format.",
        ) from None
    state, key = _state_dict_of(obj, label)
    lightning = suffix == ".ckpt" or (
        isinstance(obj, Mapping) and any("lightning_version" in str(k) for k in obj)
    )
    kind = "lightning" if lightning else "torch"
    return state, kind if key is None else f"{kind}[{key}]", trusted


def _refusal(message: str) -> str:
    """Why a ``weights_only`` load was refused, read from torch's message (never by running it)."""
    m = re.search(r"GLOBAL ([\w.]+)", message)
    if m:
        return f"contains pickled code (it needs {m.group(1)}); etafinder never executes it"
    m = re.search(r"Unsupported operand \d+", message)
    why = m.group(0) if m else "UnpicklingError"
    return (
        f"is not a plain torch.save file of tensors ({why}): either corrupt or a pickle that "
        "only running it could read; etafinder never executes pickled code"
    )


def _state_dict_of(obj: Any, label: str) -> tuple[dict, str | None]:
    """The state_dict in a checkpoint object, and the wrapper key it was under (``None``: top)."""
    if isinstance(obj, nn.Module):  # a whole pickled model (only possible when trusted)
        return obj.state_dict(), "module"
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            inner = obj.get(key)
            if isinstance(inner, nn.Module):
                return inner.state_dict(), key
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                return dict(inner), key
        if any(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj), None
        what = f"a dict with keys {_listing(sorted(map(str, obj)))} and no tensors"
    else:
        what = f"{_a(obj)}"
    raise InputError(
        f"{label}: holds {what}; expected a state_dict (a dict of tensors), or a dict with one "
        "under " + ", ".join(repr(k) for k in STATE_DICT_KEYS),
        "Save it with torch.save(model.state_dict(), FILE).",
    )


def _match_keys(state: dict, net: nn.Module, label: str) -> tuple[dict, str | None, int]:
    """Match checkpoint keys to the model's, stripping one leading ``name.`` if that matches them.

    Returns:
        ``(state, prefix stripped or None, number of checkpoint keys outside that prefix)``.
    """
    want = net.state_dict()
    if set(state) == set(want):
        _check_shapes(state, want, label, None)
        return state, None, 0
    candidates: list[tuple[dict, str | None]] = [(state, None)]
    for prefix in sorted({k.split(".", 1)[0] + "." for k in state if "." in k}):
        candidates.append(
            ({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, prefix)
        )
    for sub, prefix in candidates[1:]:
        if set(sub) == set(want):  # e.g. Lightning's "model." or DataParallel's "module."
            _check_shapes(sub, want, label, prefix)
            return sub, prefix, len(state) - len(sub)
    # No exact match: explain against the closest reading of the checkpoint.
    sub, prefix = max(candidates, key=lambda c: len(set(c[0]) & set(want)))
    missing = [k for k in want if k not in sub]
    unexpected = [k for k in sub if k not in want]
    parts = []
    if unexpected:
        parts.append(
            f"checkpoint has {len(unexpected)} unexpected key"
            f"{'s' if len(unexpected) != 1 else ''}: {_listing(unexpected)}"
        )
    if missing:
        parts.append(
            f"{len(missing)} model key{'s' if len(missing) != 1 else ''} missing from it: "
            f"{_listing(missing)}"
        )
    parts += _shape_mismatches(sub, want)
    stripped = f" (after stripping the prefix {prefix!r})" if prefix else ""
    raise InputError(
        f"{label}: does not match the model{stripped}: "
        + "; ".join(parts)
        + "; was it saved from a different model?",
        f"The model has {len(want)} entries, e.g. {_listing(list(want), 3)}; etafinder loads "
        "checkpoints strictly, so model() must build the architecture the checkpoint was saved "
        "from.",
    )


def _shape_mismatches(state: Mapping, want: Mapping) -> list[str]:
    bad = [
        k
        for k in want
        if k in state
        and isinstance(state[k], Tensor)
        and isinstance(want[k], Tensor)
        and state[k].shape != want[k].shape
    ]
    if not bad:
        return []
    shown = ", ".join(
        f"{k} (checkpoint {tuple(state[k].shape)} vs model {tuple(want[k].shape)})"
        for k in bad[:LISTED]
    )
    more = ", …" if len(bad) > LISTED else ""
    return [f"{len(bad)} shape mismatch{'es' if len(bad) != 1 else ''}: {shown}{more}"]


def _check_shapes(state: Mapping, want: Mapping, label: str, prefix: str | None) -> None:
    parts = _shape_mismatches(state, want)
    if parts:
        stripped = f" (after stripping the prefix {prefix!r})" if prefix else ""
        raise InputError(
            f"{label}: does not match the model{stripped}: {parts[0]}; was it saved "
            "from a different model?",
            "model() must build the architecture (layer sizes) the checkpoint was saved from.",
        )


# ---------------------------------------------------------------------------------------- data ----


def _read_data_file(path: Path, source: str) -> tuple[Tensor, Tensor, str]:
    """``--data FILE``: a ``.pt`` dict or an ``.npz`` archive with ``x`` and ``y``."""
    suffix = path.suffix.lower()
    hint = (
        "Write it with torch.save({'x': inputs, 'y': targets}, 'data.pt') or "
        "numpy.savez('data.npz', x=inputs, y=targets)."
    )
    if suffix not in DATA_SUFFIXES:
        raise InputError(
            f"{source}: unsupported data file type {suffix or 'without suffix'!r}; "
            "expected .pt or .npz",
            hint,
        )
    if suffix == ".npz":
        if not zipfile.is_zipfile(path):  # else numpy would guess "pickle" and talk of allow_pickle
            raise InputError(f"{source}: not an .npz archive (not a zip file)", hint)
        try:
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.files)
                found = {k: archive[k] for k in ("x", "y") if k in keys}
        except Exception as exc:  # not a zip, corrupt, or object arrays (allow_pickle=False)
            raise InputError(
                f"{source}: cannot be read as an .npz archive of numeric arrays ({_describe(exc)})",
                hint,
            ) from None
        form = "npz"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise InputError(f"{source}: {_refusal(str(exc))}", hint) from None
        except Exception as exc:
            raise InputError(
                f"{source}: cannot be read as a torch file ({_describe(exc)})", hint
            ) from None
        if not isinstance(obj, Mapping):
            raise InputError(
                f"{source}: holds {_a(obj)}; expected a dict with tensors 'x' and 'y'",
                hint,
            )
        keys = [str(k) for k in obj]
        found = {k: obj[k] for k in ("x", "y") if k in obj}
        form = "pt"
    missing = [k for k in ("x", "y") if k not in found]
    if missing:
        raise InputError(
            f"{source}: has no {' or '.join(repr(k) for k in missing)} (it holds "
            f"{_listing(sorted(keys)) or 'nothing'}); expected 'x' and 'y'",
            hint,
        )
    x = _as_tensor(found["x"], source, "'x'")
    y = _as_tensor(found["y"], source, "'y'")
    return x, y, form


def _as_tensor(value: Any, source: str, what: str) -> Tensor:
    """A tensor or numpy array as a detached CPU tensor (numbers too, for Dataset items)."""
    if isinstance(value, Tensor):
        t = value.detach()
    elif isinstance(value, np.ndarray | np.generic | int | float | bool):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"{source}: {what} is an array of dtype {arr.dtype}; expected numbers",
                "Convert it to a float or integer array.",
            )
        if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
            # torch's uint16/32/64 support almost no operations (index_select raises); widen
            if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                raise InputError(
                    f"{source}: {what} has uint64 values above int64's range",
                    "Convert it to float64 or to smaller integers.",
                )
            arr = arr.astype(np.int64)
        try:
            t = torch.from_numpy(np.array(arr))  # a writable copy
        except TypeError as exc:
            raise InputError(
                f"{source}: {what} has dtype {arr.dtype}, which torch cannot hold "
                f"({_describe(exc)})",
                "Convert it to float32/float64 or int64.",
            ) from None
    else:
        raise InputError(
            f"{source}: {what} is {_a(value)}; expected a tensor or a numpy array",
            "Convert it with torch.as_tensor(...), e.g. for a list or a PIL image "
            "add a ToTensor() transform.",
        )
    if t.dtype in (torch.uint16, torch.uint32, torch.uint64):
        t = t.to(torch.int64)  # as for numpy above (uint64 wrap-around is the user's tensor's)
    if t.is_complex():
        raise InputError(
            f"{source}: {what} is complex ({t.dtype}); expected real numbers",
            "Split real and imaginary parts into separate features.",
        )
    return t.cpu()


def _collect(raw: Any, source: str) -> tuple[Tensor, Tensor, str]:
    """What ``data()`` returned as ``(inputs, targets, form)``."""
    if isinstance(raw, DataLoader):
        return (*_from_batches(raw, source), "dataloader")
    if isinstance(raw, IterableDataset):
        return (
            *_stack(_iterate(raw, source, "iterating the IterableDataset"), source),
            "iterable_dataset",
        )
    if isinstance(raw, Dataset):
        return (*_from_dataset(raw, source), "dataset")
    if isinstance(raw, tuple | list) and len(raw) == 2:
        form = "arrays" if any(isinstance(v, np.ndarray) for v in raw) else "tensors"
        x = _as_tensor(raw[0], source, "inputs (element 0)")
        y = _as_tensor(raw[1], source, "targets (element 1)")
        return x, y, form
    what = f"{_a(raw)} of length {len(raw)}" if isinstance(raw, tuple | list) else f"{_a(raw)}"
    raise InputError(
        f"{source}: returned {what}; expected (inputs, targets) tensors or arrays, a "
        "torch.utils.data.Dataset or a DataLoader",
        "Return e.g. `return x, y` with x of shape (N, ...) and y of shape (N, ...).",
    )


def _iterate(iterable: Any, source: str, what: str) -> list:
    try:
        return list(iterable)
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"{source}: {what} raised {_describe(exc)}",
            "Fix the data pipeline; pass --debug for the full traceback.",
        ) from exc


def _pair(item: Any, source: str, what: str) -> tuple[Any, Any]:
    if isinstance(item, tuple | list) and len(item) == 2:
        return item[0], item[1]
    desc = f"{_a(item)}"
    if isinstance(item, Mapping):
        desc += f" with keys {_listing(sorted(map(str, item)))}"
    elif isinstance(item, tuple | list):
        desc += f" of length {len(item)}"
    raise InputError(
        f"{source}: {what} is {desc}; expected an (x, y) pair",
        "Make the dataset yield (input, target) tuples, e.g. wrap it in a Dataset "
        "whose __getitem__ returns (x, y).",
    )


def _from_dataset(ds: Dataset, source: str) -> tuple[Tensor, Tensor]:
    try:
        n = len(ds)  # type: ignore[arg-type]
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"{source}: returned {_a(ds)} without a usable __len__ "
            f"({_describe(exc)}); expected a sized, indexable Dataset",
            "Define __len__ and __getitem__, or return (inputs, targets) tensors.",
        ) from exc
    items = []
    for i in range(n):
        try:
            items.append(ds[i])
        except (Exception, SystemExit) as exc:
            raise InputError(
                f"{source}: dataset[{i}] raised {_describe(exc)}",
                "Fix the Dataset's __getitem__; pass --debug for the full traceback.",
            ) from exc
    return _stack(items, source)


def _stack(items: list, source: str) -> tuple[Tensor, Tensor]:
    """Per-sample ``(x, y)`` items stacked into ``(N, ...)`` tensors."""
    if not items:
        raise InputError(
            f"{source}: the dataset is empty (0 samples); expected at least one",
            "Check the data path or filter; etafinder needs samples to measure λ₀.",
        )
    xs, ys = [], []
    for i, item in enumerate(items):
        x, y = _pair(item, source, f"sample {i}")
        xs.append(_as_tensor(x, source, f"sample {i}'s input"))
        ys.append(_as_tensor(y, source, f"sample {i}'s target"))
    return _stack_one(xs, source, "input"), _stack_one(ys, source, "target")


def _stack_one(parts: list[Tensor], source: str, what: str) -> Tensor:
    first = parts[0]
    for i, t in enumerate(parts):
        if t.shape != first.shape or t.dtype != first.dtype:
            raise InputError(
                f"{source}: sample {i}'s {what} has shape {tuple(t.shape)} ({_dt(t)}) but sample "
                f"0's has {tuple(first.shape)} ({_dt(first)}); expected every sample alike",
                "Pad or resize the samples to one shape and dtype in the Dataset.",
            )
    return torch.stack(parts)


def _from_batches(loader: DataLoader, source: str) -> tuple[Tensor, Tensor]:
    """A DataLoader iterated once; its batches concatenated (the order is irrelevant)."""
    batches = _iterate(loader, source, "iterating the DataLoader")
    if not batches:
        raise InputError(
            f"{source}: the DataLoader yields no batches (0 samples); expected at least one sample",
            "Check the dataset and drop_last: etafinder needs samples to measure λ₀.",
        )
    xs, ys = [], []
    for i, batch in enumerate(batches):
        x, y = _pair(batch, source, f"batch {i}")
        xs.append(_as_tensor(x, source, f"batch {i}'s inputs"))
        ys.append(_as_tensor(y, source, f"batch {i}'s targets"))
    return _cat(xs, source, "inputs"), _cat(ys, source, "targets")


def _cat(parts: list[Tensor], source: str, what: str) -> Tensor:
    first = parts[0]
    for i, t in enumerate(parts):
        if t.ndim == 0 or t.shape[1:] != first.shape[1:] or t.dtype != first.dtype:
            raise InputError(
                f"{source}: batch {i}'s {what} have shape {tuple(t.shape)} ({_dt(t)}) but batch "
                f"0's have {tuple(first.shape)} ({_dt(first)}); expected batches of (N, ...) "
                "tensors that differ only in N",
                "Use a DataLoader with a batch_size (batch_size=None yields unbatched samples).",
            )
    return torch.cat(parts)


def _convert_targets(
    y: Tensor, loss: Loss, dtype: torch.dtype, source: str
) -> tuple[Tensor, str | None]:
    """Targets in the dtype the loss takes.

    * mse: integer/bool targets become floats of the model's dtype (``F.mse_loss`` refuses integers;
      a regression on integer labels means their values), and ``info["targets_converted"]`` says so;
    * cross_entropy: integer/bool class indices become int64 (what ``F.cross_entropy`` takes),
      float probabilities the model's dtype;
    * a callable loss: floats become the model's dtype; integers are passed as they are.

    Returns:
        ``(targets, "int64 -> float32"-style note or None)``.
    """
    if y.is_floating_point():
        return y.to(dtype), None
    if loss.name == "mse":
        return y.to(dtype), f"{_dt(y)} -> {str(dtype).removeprefix('torch.')}"
    if loss.name == "cross_entropy" and y.dtype != torch.int64:
        return y.to(torch.int64), f"{_dt(y)} -> int64"
    return y, None


def _check_data(x: Tensor, y: Tensor, source: str) -> None:
    for t, what in ((x, "inputs"), (y, "targets")):
        if t.ndim == 0:
            raise InputError(
                f"{source}: {what} are a 0-d tensor (a single number); expected a "
                "first dimension of samples, shape (N, ...)",
                "Return inputs shaped (N, features) and targets shaped (N, ...).",
            )
    if x.shape[0] != y.shape[0]:
        raise InputError(
            f"{source}: {x.shape[0]} inputs but {y.shape[0]} targets; expected the "
            "same number of samples (the first dimension)",
            f"inputs have shape {tuple(x.shape)}, targets {tuple(y.shape)}; the first "
            "dimension counts samples in both.",
        )
    if x.shape[0] == 0:
        raise InputError(
            f"{source}: the data is empty (0 samples); expected at least one",
            "etafinder needs samples to measure λ₀.",
        )
    for t, what in ((x, "inputs"), (y, "targets")):
        if t.is_floating_point():
            bad = ~torch.isfinite(t)
            if bad.any():
                first = int(bad.reshape(t.shape[0], -1).any(1).nonzero()[0, 0])
                raise InputError(
                    f"{source}: {what} contain {int(bad.sum())} NaN/inf value"
                    f"{'s' if int(bad.sum()) != 1 else ''} (first in sample {first}); expected "
                    "finite numbers",
                    "Clean or impute the data (e.g. torch.nan_to_num) before returning it; in "
                    "float32, values beyond ±3.4e38 overflow to inf.",
                )


def _split(total: int, samples: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """Probe-set and rest indices: one seeded random subset, both sorted (deterministic)."""
    if samples is None or samples >= total:
        return torch.arange(total), torch.arange(0)
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    return perm[:samples].sort().values, perm[samples:].sort().values


# --------------------------------------------------------------------------------------- trial ----


def _trial(
    net: nn.Module,
    forward: Callable | None,
    loss: Loss,
    x: Tensor,
    y: Tensor,
    all_targets: Tensor,
    where: str,
    source: str,
) -> None:
    """One forward pass on a few probe samples, on a throwaway copy, and the loss on its output."""
    tx, ty = x[:TRIAL_SAMPLES], y[:TRIAL_SAMPLES]
    n = int(tx.shape[0])
    call = "forward(model, x)" if forward is not None else "the model's forward pass"
    seen = f"inputs of shape {_shape(tx)} ({_dt(tx)}) on {n} sample{'s' if n != 1 else ''}"
    trial = copy.deepcopy(net).eval()  # eval: the real model's BatchNorm statistics stay untouched
    try:
        with torch.no_grad():
            out = forward(trial, tx) if forward is not None else trial(tx)
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"{where}: {call} failed on {seen}: {_describe(exc)}",
            _user_hint(
                exc,
                "Make model() accept the inputs data() returns (check the input "
                "size and dtype); pass --debug for the full traceback.",
            ),
        ) from exc
    hint_forward = (
        "Define `def forward(model, x): return model(x)[...]` in the model file, "
        "returning the tensor the loss takes."
    )
    if not isinstance(out, Tensor):
        desc = _a(out)
        if isinstance(out, Mapping):
            desc += f" with keys {_listing([str(k) for k in out])}"
        elif isinstance(out, tuple | list):
            desc += f" of length {len(out)}"
        raise InputError(
            f"{where}: {call} returned {desc} on {seen}; expected a tensor", hint_forward
        )
    if out.ndim == 0 or out.shape[0] != n:
        raise InputError(
            f"{where}: {call} returned shape {tuple(out.shape)} on {seen}; expected "
            f"the sample dimension first, ({n}, ...)",
            "The output's first dimension must count samples, like the inputs'.",
        )
    if not out.is_floating_point():
        raise InputError(
            f"{where}: {call} returned {_dt(out)} outputs; expected floating point", hint_forward
        )
    if not torch.isfinite(out).all():
        raise InputError(
            f"{where}: {call} returned NaN/inf outputs at the starting weights on "
            f"{seen}; expected finite outputs",
            "Check the initialisation and the checkpoint; λ₀ is undefined where the "
            "output is not finite.",
        )
    _check_targets(out, ty, all_targets, loss, where, source)
    try:
        with torch.no_grad():
            value = loss(out, ty)
    except (Exception, SystemExit) as exc:
        raise InputError(
            f"{where}: the {loss.name} loss failed on outputs {_shape(out)} ({_dt(out)}) and "
            f"targets {_shape(ty)} ({_dt(ty)}): {_describe(exc)}",
            _user_hint(exc, "The loss takes (output, target) of one batch and returns their mean."),
        ) from exc
    if not isinstance(value, Tensor) or value.numel() != 1 or value.ndim > 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise InputError(
            f"{where}: the loss returned {shape}; expected a scalar tensor (the mean over samples)",
            "Use reduction='mean' (torch's default), or return loss.mean().",
        )
    if not torch.isfinite(value).all():
        raise InputError(
            f"{where}: the loss is {float(value)} at the starting weights; expected "
            "a finite number",
            "Check the loss, the targets and the initialisation.",
        )


def _check_targets(
    out: Tensor, ty: Tensor, all_targets: Tensor, loss: Loss, where: str, source: str
) -> None:
    """The built-in losses' requirements on targets, against the trial output."""
    if loss.name == "mse":
        if out.shape[1:] != ty.shape[1:]:
            raise InputError(
                f"{where}: output shape {_shape(out)} vs target shape {_shape(ty)}; mse needs "
                "equal shapes (no broadcasting)",
                f"Reshape the targets in data() to {_shape(out)} (e.g. y.reshape(len(y), "
                f"{', '.join(map(str, out.shape[1:])) or '-1'})), or make the model's output "
                "match them.",
            )
        return
    if loss.name != "cross_entropy":
        return
    if out.ndim < 2:
        raise InputError(
            f"{where}: output shape {_shape(out)}; cross_entropy needs class "
            "logits shaped (N, K) or (N, K, d1, …)",
            "Return one logit per class, e.g. a final nn.Linear(features, K).",
        )
    k = int(out.shape[1])
    if k < 2:
        raise InputError(
            f"{where}: output shape {_shape(out)} has K=1 class; cross_entropy "
            "needs K ≥ 2 (with one class it is constantly zero)",
            'For a binary task return 2 logits, or use loss = "mse".',
        )
    index_shape = (out.shape[0], *out.shape[2:])
    if ty.is_floating_point():
        if ty.shape != out.shape:
            raise InputError(
                f"{where}: float targets shaped {_shape(ty)} for outputs {_shape(out)}; "
                "cross_entropy expects class probabilities shaped like the outputs, or integer "
                f"class indices shaped {_shape(out.new_empty(index_shape))}",
                "If the targets are class labels stored as floats, return them as y.long().",
            )
        low = float(all_targets.min())
        sums = all_targets.sum(dim=1)
        off = float((sums - 1).abs().max())
        if low < 0 or off > PROBABILITY_ATOL:
            raise InputError(
                f"{source}: cross_entropy probability targets must be ≥ 0 and sum to 1 over the "
                f"class dimension; got minimum {low:.4g} and row sums off by up to {off:.3g}",
                "Normalise them (y / y.sum(1, keepdim=True)) or pass class indices as integers.",
            )
        return
    if ty.shape != index_shape:
        raise InputError(
            f"{where}: integer targets shaped {_shape(ty)} for outputs {_shape(out)}; "
            f"cross_entropy expects class indices shaped {_shape(out.new_empty(index_shape))} "
            "(or float probabilities shaped like the outputs)",
            "For one-hot targets return y.argmax(1) (indices) or y.float() (probabilities).",
        )
    bad = (all_targets < 0) | (all_targets >= k)
    if bad.any():
        first = int(bad.reshape(bad.shape[0], -1).any(1).nonzero()[0, 0])
        value = int(
            all_targets.reshape(all_targets.shape[0], -1)[first][
                bad.reshape(bad.shape[0], -1)[first]
            ][0]
        )
        raise InputError(
            f"{source}: class index {value} (sample {first}; {int(bad.sum())} out of range in "
            f"all) is outside [0, {k}) for the model's {k} classes",
            "Class indices must run from 0 to K-1 (relabel them), or the model needs more "
            "outputs; ignore_index is not supported.",
        )


# ------------------------------------------------------------------------------------- helpers ----


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _describe(exc: BaseException) -> str:
    """``"Type: first line of the message"`` (trimmed), for one-line error messages."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _user_line(exc: BaseException, filename: str) -> str:
    """``" (line N)"``: the innermost line of ``filename`` in the traceback, if any."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if filename and tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return "" if line is None else f" (line {line})"


def _user_hint(exc: BaseException, default: str) -> str:
    if isinstance(exc, SystemExit):
        return (
            "The model file is imported, not run: keep argument parsing and sys.exit() under "
            '`if __name__ == "__main__":`.'
        )
    return default


def _a(obj: object) -> str:
    """``"a Linear"``, ``"an int"``: the object's type name with its article."""
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _listing(items: list[str], limit: int = LISTED) -> str:
    shown = ", ".join(items[:limit])
    return shown + (", …" if len(items) > limit else "")


def _shape(t: Tensor) -> str:
    """A batch tensor's shape with the sample dimension written N: ``(N, 3)``, ``(N,)``."""
    dims = ["N", *map(str, t.shape[1:])]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def _dt(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")
