"""Adapters: LangChain agents, chat histories, classic memory, and a pure function.

``memory.adapters.functional`` and ``memory.adapters.langchain`` need only langchain-core;
the agent middleware needs ``context-attic[agents]`` (langchain) and the classic memory
``context-attic[classic]`` (langchain-classic), both imported on first use.
"""
