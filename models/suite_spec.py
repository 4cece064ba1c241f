"""`SuiteSpec`: what the suite needs to know of a model class, declared in one object.

A model class sets ``suite = SuiteSpec(...)`` (:class:`~mfsoftmax.models.base.RecommenderBase`
holds the defaults); the runner, the config and the stages read ``cls.suite.<field>`` and never
branch on a model's kind or name. The spec is frozen and its tables are read-only, since every
instance of the class shares it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

__all__ = ["FOLDING_SWEEPS", "SuiteSpec"]

#: what the folding stage can sweep for a model (None: not measured)
FOLDING_SWEEPS = (None, "w0", "dim", "reference")


def _is_names(value, n: int | None = None) -> bool:
    """Whether ``value`` is a tuple of strings (of length ``n`` when given)."""
    return (isinstance(value, tuple) and all(isinstance(v, str) for v in value)
            and (n is None or len(value) == n))


@dataclass(frozen=True)
class SuiteSpec:
    """A model class's declarations to the suite.

    Parameters
    ----------
    serving_modes : (str, str or None)
        The serving path of a known user's request and of a new user's (None: a new user takes
        the known user's path, so it is not measured apart).
    ablation_inputs : (bool or None, bool or None, str) or None
        The model's reference row in the query-features ablation: (uses history, uses user
        features, what it sees); None leaves it out.
    ablation_switches : (str, str) or None
        The parameters that switch history and user features off, for a model the ablation
        refits without each (None: not ablated itself).
    one_pass : mapping
        Parameters that make ``fit`` one pass over the data (an iteration, an epoch), for timing.
    quick_caps : mapping
        Caps of the ``--quick`` smoke run, e.g. ``{"epochs": 2}``.
    new_item_params : mapping
        Parameters a refit needs to embed items unseen in training (the new-items stage).
    folding_sweep : {None, "w0", "dim", "reference"}
        What the folding stage sweeps: w0 at each dim, dim, a non-personalised level measured
        once, or nothing.
    memory_params : tuple of str, or callable
        The parameters that set the size of a fit's arrays (named when it cannot fit in
        memory), or a function of the model giving them (e.g. ``workers`` only when > 1).
    """

    serving_modes: tuple = ("lookup", None)
    ablation_inputs: tuple | None = None
    ablation_switches: tuple | None = None
    one_pass: Mapping = field(default_factory=dict)
    quick_caps: Mapping = field(default_factory=dict)
    new_item_params: Mapping = field(default_factory=dict)
    folding_sweep: str | None = None
    memory_params: tuple | Callable = ()

    def __post_init__(self):
        for name in ("one_pass", "quick_caps", "new_item_params"):
            value = getattr(self, name)
            if not isinstance(value, Mapping):
                raise TypeError(f"SuiteSpec: {name} must be a table of parameters, got {value!r}")
            object.__setattr__(self, name, MappingProxyType(dict(value)))
        self._check()

    def _check(self) -> None:
        """Raise TypeError for a declaration the suite could not read."""
        known = self.serving_modes
        problems = {
            "serving_modes": not (isinstance(known, tuple) and len(known) == 2
                                  and isinstance(known[0], str) and known[0]
                                  and (known[1] is None or isinstance(known[1], str))),
            "ablation_inputs": not (self.ablation_inputs is None or (
                isinstance(self.ablation_inputs, tuple) and len(self.ablation_inputs) == 3
                and isinstance(self.ablation_inputs[2], str))),
            "ablation_switches": not (self.ablation_switches is None
                                      or _is_names(self.ablation_switches, 2)),
            "folding_sweep": self.folding_sweep not in FOLDING_SWEEPS,
            "memory_params": not (callable(self.memory_params) or _is_names(self.memory_params)),
        }
        for name, bad in problems.items():
            if bad:
                raise TypeError(f"SuiteSpec: bad {name}={getattr(self, name)!r} "
                                f"(see SuiteSpec's docstring)")

    def memory_names(self, model) -> tuple:
        """The parameters that set ``model``'s fit size (:attr:`memory_params`, resolved)."""
        names = self.memory_params(model) if callable(self.memory_params) else self.memory_params
        return tuple(names)

    def parameter_names(self) -> set:
        """Every constructor parameter the spec names (to check against the constructor)."""
        out = set(self.ablation_switches or ())
        out |= set(self.one_pass) | set(self.quick_caps) | set(self.new_item_params)
        if self.folding_sweep in ("w0", "dim"):
            out.add(self.folding_sweep)
        if not callable(self.memory_params):
            out |= set(self.memory_params)
        return out


#: the fields of :class:`SuiteSpec`, which a model class must not set as attributes of its own
HOOKS = tuple(f.name for f in fields(SuiteSpec))
