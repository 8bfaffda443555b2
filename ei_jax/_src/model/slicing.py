"""Cutting a traced program into layers: deep-ei's layer, generalised to any JAX program.

The *linear operations* of a :class:`~ei_jax._src.model.traced.Program` are its dense products
(``dot_general``) and convolutions (``conv_general_dilated``) with one operand computed from
the input and the other from the parameters. Layer ``k`` is the map from the activations that
feed linear operation ``k`` to the activations that feed the next one(s) (the network's output
for the last): walking back from a linear operation through affine operations (bias adds,
scalings, reshapes, average pooling, residual adds) stops at the outputs of nonlinear ones
(activations, max pooling, normalisation) -- those are the activations that feed it, its
*frontier*. Layer ``k``'s equations are those the next frontier needs that earlier frontiers
do not; its input is every value they read from before (``[h, x]`` for a residual add).

A layer whose equations use random numbers (dropout in training mode) or feed a state update
(BatchNorm in training mode) is *refused*: :attr:`Layer.refused` says why; the others are not
affected.
"""

import dataclasses

from ei_jax._src.model.traced import Const, Program, module_path, where

__all__ = ["Layer", "cut", "is_affine"]

_ANY = {"add", "sub", "add_any", "neg", "reshape", "transpose", "broadcast_in_dim", "squeeze",
        "expand_dims", "convert_element_type", "reduce_sum", "reduce_window_sum", "slice",
        "concatenate", "copy", "copy_p", "rev", "cumsum"}
_ONE_DATA = {"mul", "dot_general", "conv_general_dilated"}        # linear in one data operand
_FIRST_DATA = {"div", "pad", "dynamic_slice", "gather"}           # data only in the first operand
_LINEAR = {"dot_general", "conv_general_dilated"}
_RANDOM = ("random_", "threefry", "rng_")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a traced program.

    Attributes:
      eqns: indices of its equations (program order), ``prelude`` the parameter-only
        equations they need (e.g. BatchNorm's ``gamma / sqrt(var + eps)``).
      inputs, outputs: value ids it reads from before / hands on; linear: its linear operations.
      params: the parameter leaf ids it reads. refused: why it cannot be measured, or None.
    """

    eqns: tuple
    prelude: tuple
    inputs: tuple
    outputs: tuple
    linear: tuple
    params: tuple
    refused: str | None


def _ids(refs):
    return [r for r in refs if not isinstance(r, Const)]


def is_affine(eqn, data) -> bool:
    """True if ``eqn`` is an affine map of its data operands (``data``: the set of data ids)."""
    flags = [(not isinstance(r, Const)) and r in data for r in eqn.ins]
    name = eqn.prim.name
    if name in _ANY:
        return True
    if name in _ONE_DATA:
        return sum(flags) <= 1
    if name in _FIRST_DATA:
        return not any(flags[1:])
    return False


def _taint(prog: Program):
    data, rand, par = set(prog.x_ids), set(), set(range(prog.n_params))
    for e in prog.eqns:
        ins = _ids(e.ins)
        outs = [o for o in e.outs if o >= 0]
        if any(i in data for i in ins):
            data.update(outs)
        # Randomness is followed until it meets the data: the equation where it does is random.
        if (e.prim.name.startswith(_RANDOM) or any(i in rand for i in ins)) and outs[0] not in data:
            rand.update(outs)
        if any(i in par for i in ins):
            par.update(outs)
    return data, rand, par


def _is_linear(e, data, par) -> bool:
    if e.prim.name not in _LINEAR or len(e.ins) != 2 or any(isinstance(r, Const) for r in e.ins):
        return False
    a, b = e.ins
    return (a in data) != (b in data) and (a in par or b in par)


def cut(prog: Program, state_outputs=()) -> list[Layer]:
    """The layers of a traced program, in order (see the module docstring).

    Args:
      prog: the traced program; state_outputs: ids of updated state values (mutable
        collections, NNX state) -- equations computing them from the data refuse their layer.

    Returns:
      list of :class:`Layer`, one per group of linear operations that gives a new layer.
    """
    eqns = prog.eqns
    data, rand, par = _taint(prog)
    producer = {o: k for k, e in enumerate(eqns) for o in e.outs if o >= 0}

    def frontier(k):
        out, stack, seen = [], [r for r in _ids(eqns[k].ins) if r in data], set()
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            p = producer.get(i)
            if p is None or _is_linear(eqns[p], data, par) or not is_affine(eqns[p], data):
                out.append(i)
            else:
                stack.extend(r for r in _ids(eqns[p].ins) if r in data)
        return sorted(out)

    def ancestors(ids, covered, among):
        found, stack = set(), list(ids)
        while stack:
            p = producer.get(stack.pop())
            if p is None or p in covered or p in found:
                continue
            found.add(p)
            stack.extend(r for r in _ids(eqns[p].ins) if r in among)
        return found

    linear = [k for k, e in enumerate(eqns) if _is_linear(e, data, par)]
    if not linear:
        return []
    outputs = [o for o in _ids(prog.out_ids) if o in data]
    state_only = (ancestors([s for s in state_outputs if s in data], set(), data)
                  - ancestors(outputs, set(), data))
    # The equations whose values leave the network for the state: their layer is refused.
    stateful = {producer[r] for k in state_only for r in _ids(eqns[k].ins)
                if r in data and r in producer and producer[r] not in state_only}
    stateful |= {producer[s] for s in state_outputs if s in data and s in producer} - state_only
    covered = ancestors(frontier(linear[0]), set(), data)
    layers = []
    for nxt in [frontier(k) for k in linear[1:]] + [outputs]:
        new = ancestors(nxt, covered, data)
        if not new:
            continue
        covered |= new
        order = sorted(new)
        made = {o for k in order for o in eqns[k].outs}
        reads = [r for k in order for r in _ids(eqns[k].ins) if r in data and r not in made]
        inputs = tuple(dict.fromkeys(reads + [o for o in nxt if o not in made]))
        needed = {r for k in order for r in _ids(eqns[k].ins) if r not in data}
        prelude = sorted(ancestors(needed, set(), set(range(len(prog.avals))) - data))
        leaves = sorted({r for k in prelude + order for r in _ids(eqns[k].ins) if r < prog.n_params}
                        | {r for r in needed if r < prog.n_params})
        layers.append(Layer(tuple(order), tuple(prelude), inputs, tuple(nxt),
                            tuple(k for k in order if k in linear), tuple(leaves),
                            _refusal(eqns, order, prelude, rand, stateful)))
    return layers


def _refusal(eqns, order, prelude, rand, stateful):
    for k in order:
        e = eqns[k]
        if any(r in rand for r in _ids(e.ins)):
            source = next((eqns[p] for p in prelude if eqns[p].prim.name.startswith(_RANDOM)), e)
            return (f"it uses random numbers: operation {source.name!r} "
                    f"(module {module_path(e) or '?'}, {where(source)}), e.g. dropout in training "
                    "mode, so it is not a function of its inputs. Put the model in inference mode "
                    "(Dropout(deterministic=True), model.eval()) to measure it")
        if k in stateful:
            return (f"it updates state from its inputs: operation {e.name!r} (module "
                    f"{module_path(e) or '?'}, {where(e)}) feeds a mutable collection, e.g. "
                    "BatchNorm in training mode (batch statistics). Use inference mode "
                    "(BatchNorm(use_running_average=True), model.eval()) to measure it")
    return None
