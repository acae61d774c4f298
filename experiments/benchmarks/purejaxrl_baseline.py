"""Import PureJaxRL's single-file agents from a checkout, unchanged, to run beside ours.

Nothing of PureJaxRL is copied here: ``load_purejaxrl(name)`` imports
``$PUREJAXRL_DIR/purejaxrl/<name>.py`` as it is, after two run-time adaptations made
outside its files:

- its unused imports of brax, navix, wandb and flashbax (``wrappers.py``, ``dqn.py``)
  get empty stand-in modules where the real package is not installed;
- gymnax 1.0 returns a 6-tuple ``(obs, state, reward, terminated, truncated, info)``
  from ``step``; PureJaxRL expects gymnax 0.0.x's 5-tuple, so the module's
  ``gymnax.make`` is replaced by one that wraps the environment in gymnax's own
  ``LegacyStepAPIWrapper`` (done = terminated or truncated, as before).

    git clone https://github.com/luchris429/purejaxrl; export PUREJAXRL_DIR=$PWD/purejaxrl
    pip install 'jrl[bench]'   # distrax (PureJaxRL's PPO), flashbax for its DQN
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from pathlib import Path

import gymnax
from gymnax.wrappers.compat import LegacyStepAPIWrapper


def purejaxrl_dir() -> Path | None:
    """The checkout named by $PUREJAXRL_DIR, or None when unset."""
    value = os.environ.get("PUREJAXRL_DIR")
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not (path / "purejaxrl" / "ppo.py").is_file():
        raise FileNotFoundError(
            f"PUREJAXRL_DIR={value!r} is not a PureJaxRL checkout (no purejaxrl/ppo.py); "
            "git clone https://github.com/luchris429/purejaxrl and point PUREJAXRL_DIR at it"
        )
    return path


def _stub(name: str, **attributes) -> None:
    """An empty module ``name`` (and its parents) unless the real one imports."""
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
        if i > 1:
            setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], sys.modules[sub])
    for key, value in attributes.items():
        setattr(sys.modules[name], key, value)


class _Unused:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("a stand-in for an optional PureJaxRL dependency was used")


def _legacy_make(*args, **kwargs):
    env, params = gymnax.make(*args, **kwargs)
    return LegacyStepAPIWrapper(env), params


def load_purejaxrl(name: str) -> types.ModuleType:
    """PureJaxRL's ``purejaxrl/<name>.py`` as a module (``make_train(config)`` etc.)."""
    root = purejaxrl_dir()
    if root is None:
        raise RuntimeError("set PUREJAXRL_DIR to a PureJaxRL checkout")
    _stub("brax.envs.wrappers.training", EpisodeWrapper=_Unused, AutoResetWrapper=_Unused)
    _stub("navix")
    _stub("wandb")
    source_dir = str(root / "purejaxrl")
    if source_dir not in sys.path:
        sys.path.insert(0, source_dir)
    path = root / "purejaxrl" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"purejaxrl_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.gymnax = types.SimpleNamespace(make=_legacy_make)
    return module
