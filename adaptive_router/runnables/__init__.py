"""LangChain Runnables: the AdaptiveRouter and its micro-batcher."""
