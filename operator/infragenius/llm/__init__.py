"""The optional LLM stage: a small Protocol, the Ollama implementation, prompts and safety."""
