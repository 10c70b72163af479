"""Limits and checks that the command line and the library share (only ``errors`` imported: ``--help`` and the
light commands read them)."""

from distok_cli.errors import BadInput

MIN_SIZE = 8  # pixels
MIN_PRIOR_STEPS = 2  # diffusers' UnCLIPScheduler divides by steps − 1
MAX_PROMPT = 300  # characters


def check_prompt(prompt: str) -> str:
    """A prompt with exactly one ``<>`` (where the token goes), at most :data:`MAX_PROMPT` characters."""
    if prompt.count("<>") != 1:
        if "<>" not in prompt:
            raise BadInput(f"prompt {prompt!r} has no '<>' where the token goes (e.g. \"a photo of a <>\")")
        raise BadInput(f"prompt {prompt!r} has more than one '<>'")
    if len(prompt) > MAX_PROMPT:
        raise BadInput(f"prompt is longer than {MAX_PROMPT} characters")
    return prompt
