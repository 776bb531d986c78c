"""Telegram: the chat a user links to their account (``linking``), the bot's commands
(``commands``: plain functions, no Telegram in them; ``bot``: the python-telegram-bot adapter
that long-polls), and sending notifications to the linked chat (``send``)."""
