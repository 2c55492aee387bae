"""The client API for users' own training scripts, published as ``import deepscope``.

    import deepscope
    with deepscope.init(name="char lstm", config=vars(args)) as run:
        run.watch(model, probe=probe_text, vocab=chars)
        for step in range(1, steps + 1):
            ...
            run.log({"train/loss": loss}, step=step)

See docs/api.md. The Lightning callback is ``deepscope.lightning.DeepscopeCallback`` (needs the
``lightning`` extra); ``deepscope import-lstmvis DIR`` turns an LSTMVis project into a run.
"""
from .run import DeepscopeWarning, Run, init

__all__ = ["init", "Run", "DeepscopeWarning", "import_lstmvis"]


def import_lstmvis(*args, **kwargs):
    """See :func:`backend.client.lstmvis.import_lstmvis` (needs h5py: the ``lstmvis`` extra)."""
    from .lstmvis import import_lstmvis as _import

    return _import(*args, **kwargs)
