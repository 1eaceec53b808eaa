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


def is_builtin(prior) -> bool:
    try:
        from pnr.priors.builtin.prior import BuiltinPrior
    except ImportError:  # pragma: no cover
        return False
    return isinstance(prior, BuiltinPrior)


def resolve_prompts(prior, edit_prompt: str, source_prompt: str | None, method: str) -> tuple[str, str | None]:
    """-> (c_edit text, source text or None). PromptError for empty prompts, unknown words (with close
    known words), or PDS without a source prompt."""
    if not edit_prompt or not edit_prompt.strip():
        raise PromptError("the edit prompt is empty: say what to change, e.g. \"sitting\" or \"in blue\"")
    edit_prompt = edit_prompt.strip()
    source_prompt = source_prompt.strip() if source_prompt and source_prompt.strip() else None
    if method == "pds" and source_prompt is None:
        raise PromptError("--method pds needs the source's prompt (--source-prompt, or a checkpoint whose "
                          "meta holds its caption)")
    if not is_builtin(prior):
        return edit_prompt, source_prompt
    from pnr.data.domain.grammar import apply_edit, caption, normalize_phrase, parse_caption

    words = normalize_phrase(edit_prompt)  # unknown words -> PromptError naming close known words
    if source_prompt is None:
        if not words.attributes and words.text != edit_prompt:  # only filler words
            raise PromptError(f"edit prompt {edit_prompt!r} names nothing the built-in domain knows (ignored: "
                              f"{', '.join(words.ignored)}); try e.g. 'in blue', 'striped', 'tall', 'sitting'")
        return words.text, None
    try:
        spec = parse_caption(source_prompt)
    except PromptError as e:
        raise PromptError(f"source caption (--source-prompt, or the one stored with the source): {e}") from None
    return caption(apply_edit(spec, edit_prompt)), caption(spec)


def prompt_words(prior, edit_prompt: str) -> dict | None:
    """How the built-in prior reads `edit_prompt`: {"text", "used", "ignored", "mapped", "attributes"}
    (pnr.data.domain.grammar.PhraseWords); None for other priors, which get the prompt as written."""
    if not is_builtin(prior) or not edit_prompt or not edit_prompt.strip():
        return None
    from pnr.data.domain.grammar import normalize_phrase

    return normalize_phrase(edit_prompt).to_dict()
