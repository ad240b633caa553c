"""A chatbot whose history fits a budget, with ``RunnableWithMessageHistory`` unchanged.

``ContextAtticChatMessageHistory`` stores every turn in a SQLite file and hands the chain
the budgeted view, so a long chat costs the same per turn as a short one.

    python examples/chatbot_history.py       # offline; OPENAI_API_KEY for a real model
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from _offline import chat_model, embedder
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from memory import Budget, ConversationMemory
from memory.adapters.langchain import ContextAtticChatMessageHistory

SYSTEM = "You are a concise travel assistant."
QUESTIONS = [
    "I'm planning a trip to Lisbon in May with my sister Ana.",
    "We land on May 12 at 09:40 and leave on May 19.",
    "What neighbourhood should we stay in? We like walking and live music.",
    "Ana is vegetarian; any food tips?",
    "Is a day trip to Sintra worth it?",
    "How do we get from the airport to the centre?",
    "Remind me: when do we land, and who am I travelling with?",
]
REPLIES = [f"(fake reply {i}) " + "Here is a detailed suggestion. " * 12 for i in range(7)]


def main() -> None:
    histories: dict[str, ContextAtticChatMessageHistory] = {}
    database = Path(tempfile.mkdtemp()) / "chat.db"

    def get_session_history(session_id: str) -> ContextAtticChatMessageHistory:
        if session_id not in histories:
            memory = ConversationMemory.open(
                database,
                session=session_id,
                budget=Budget(context_window=600, reserve_output=200),
                embedder=embedder(),
            )
            histories[session_id] = ContextAtticChatMessageHistory(memory, system=SYSTEM)
        return histories[session_id]

    prompt = ChatPromptTemplate.from_messages(
        [("system", SYSTEM), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # still supported until 2.0
        chat = RunnableWithMessageHistory(
            prompt | chat_model(REPLIES),
            get_session_history,
            input_messages_key="input",
            history_messages_key="history",
        )
    config: dict = {"configurable": {"session_id": "traveller-1"}}
    for number, question in enumerate(QUESTIONS, start=1):
        reply = chat.invoke({"input": question}, config)
        history = histories["traveller-1"]
        sent = history.last_prompt
        assert sent is not None
        print(
            f"turn {number}: history {sent.report.turns_total} messages, sent "
            f"{sent.report.turns_kept} ({sent.tokens} tokens, saved {sent.report.tokens_saved})"
        )
    print("last reply:", str(reply.content)[:80])
    print("stored messages:", len(histories["traveller-1"].memory.history()))
    for history in histories.values():
        history.close()


if __name__ == "__main__":
    main()
