"""Memento inside other people's frameworks: `langchain.py` `MementoChat`, the engine as a
LangChain chat model. Nothing in the service imports this package."""
