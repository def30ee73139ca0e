"""One exception type for problems the user can fix; the CLI prints it as one line."""


class RoseError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""


class MissingDependency(RoseError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str | None = None, purpose: str = ""):
        hint = f"pip install 'rose[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"{package} is not installed{what}: run `{hint}`")
