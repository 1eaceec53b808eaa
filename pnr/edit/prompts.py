"""From the user's words to the prior's conditioning text.

With the built-in prior, whose text encoder knows the domain's captions, an edit prompt names only the
change ("sitting", "in blue", "wearing a hat"); when the source's caption is known (checkpoint meta
"caption" or --source-prompt) the conditioning text is the caption of the edited object. Prompts are read
as people type them (pnr.data.domain.grammar.normalize_phrase): filler words are ignored, everyday words
map to the domain's ("navy" -> blue, "make it much taller" -> tall); `prompt_words` says which words were
used. Other priors get the prompt as written.
"""

from __future__ import annotations

from pnr.errors import PromptError


def resolve_prompts(prior, edit_prompt: str, source_prompt: str | None, method: str) -> tuple[str, str | None]:
    """-> (c_edit text, source text or None). PromptError for empty prompts, PDS without a source prompt, or what
    the prior's own `compose_prompts` refuses (the built-in prior: unknown words, with close known words)."""
    if not edit_prompt or not edit_prompt.strip():
        raise PromptError("the edit prompt is empty: say what to change, e.g. \"sitting\" or \"in blue\"")
    edit_prompt = edit_prompt.strip()
    source_prompt = source_prompt.strip() if source_prompt and source_prompt.strip() else None
    if method == "pds" and source_prompt is None:
        raise PromptError("--method pds needs the source's prompt (--source-prompt, or a checkpoint whose "
                          "meta holds its caption)")
    compose = getattr(prior, "compose_prompts", None)
    return compose(edit_prompt, source_prompt) if compose is not None else (edit_prompt, source_prompt)


def prompt_words(prior, edit_prompt: str) -> dict | None:
    """How the prior reads `edit_prompt` ({"text", "used", "ignored", "mapped", "attributes"} for the built-in
    prior); None for priors that take the prompt as written."""
    read = getattr(prior, "read_prompt", None)
    if read is None or not edit_prompt or not edit_prompt.strip():
        return None
    return read(edit_prompt)
