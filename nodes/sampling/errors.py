"""The one exception type of the sampling library.

Every check on caller input in ``nodes.sampling`` (unknown sampler or schedule
names, steps < 1, denoise outside (0, 1], malformed sigmas, latent /
conditioning batch mismatches, missing sampler history) raises
:class:`SamplingError`. It subclasses ``ValueError`` so generic callers can
catch it, and it carries structured fields so the node layer can attach the
node id and input name without parsing the message.

``assert`` is used only for internal invariants, never for caller input.
"""

from __future__ import annotations

__all__ = ["SamplingError"]


class SamplingError(ValueError):
    """Bad input to a sampling function, with what was expected and how to fix it.

    Args:
        argument: name of the offending argument as the caller spelled it
            (e.g. ``"sigmas"``, ``"positive['context']"``).
        expected: the rule the value breaks, phrased as what was expected.
        found: a short description of what was found.
        fix: one sentence telling the caller what to do.
        value: the offending object itself (kept for programmatic access,
            never formatted into the message).
    """

    def __init__(self, argument: str, expected: str, found: str, fix: str, value: object = None):
        self.argument = argument
        self.expected = expected
        self.found = found
        self.fix = fix
        self.value = value
        super().__init__(f"{argument}: expected {expected}, found {found}. {fix}")

    def __reduce__(self):
        # Keyword-only reconstruction so the error survives pickling (process pools, queues).
        return (SamplingError, (self.argument, self.expected, self.found, self.fix, self.value))
