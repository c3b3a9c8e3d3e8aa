"""Pure text code shared by answering and training: sentences, evidence, the prompt, answer scores.

The assistant renders every live prompt with it, and training renders its answer-from-sources
examples with the same functions, so what the model learns from is what it is shown when asked.
"""
