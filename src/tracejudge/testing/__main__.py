"""``python -m tracejudge.testing --delay 0.2``: a chat-completions endpoint in its own process."""

from tracejudge.testing.chat_server import main

main()
