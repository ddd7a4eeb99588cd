"""AI providers (OpenAI, Anthropic, Ollama): resolution, calls, and the AI tasks built on them."""
