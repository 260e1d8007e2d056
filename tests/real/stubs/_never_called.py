"""Stand-in for modules a package imports at module level but never calls on the paths tested here.

Any attribute is a function that raises when called, so `from librosa import x` works and
a call that was not supposed to happen fails loudly instead of passing silently.
"""


def stub(module_name: str):
    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def never_called(*args, **kwargs):
            raise RuntimeError(f"stub: {module_name}.{name} was called; the real package is not installed here")

        return never_called

    return __getattr__
