"""One adapter per provider, each turning a ChatRequest into a ChatResult or a typed ModelError."""
