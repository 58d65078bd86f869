from __future__ import annotations

import inspect

from host.server import EmbeddedServer, ServerAdapter
from host.server.adapter import ACTION_METHODS, HOST_ACTIONS
from policies.vocabulary import ACTIONS


def test_every_server_action_has_a_method_with_the_vocabulary_arguments() -> None:
    assert set(ACTION_METHODS) | HOST_ACTIONS == set(ACTIONS)
    assert not set(ACTION_METHODS) & HOST_ACTIONS
    for action, method in ACTION_METHODS.items():
        spec = ACTIONS[action]
        for impl in (ServerAdapter, EmbeddedServer):
            sig = inspect.signature(getattr(impl, method))
            params = list(sig.parameters.values())
            assert [p.name for p in params[:2]] == ["self", "caller"], (impl, method)
            positional = [p.name for p in params[2:] if p.kind is p.POSITIONAL_OR_KEYWORD]
            assert positional == [*spec.args, *spec.optional], (impl, method)
            for name in spec.optional:
                assert sig.parameters[name].default is not inspect.Parameter.empty
            has_op = "op_id" in sig.parameters
            assert has_op == spec.write, (impl, method)
            if has_op:
                assert sig.parameters["op_id"].kind is inspect.Parameter.KEYWORD_ONLY


def test_embedded_server_satisfies_the_protocol(server: EmbeddedServer) -> None:
    adapter: ServerAdapter = server  # mypy checks this assignment structurally
    for name, member in inspect.getmembers(ServerAdapter, inspect.isfunction):
        if not name.startswith("_"):
            assert callable(getattr(adapter, name)), name
