"""``subaccount-bot playground``: try the bot without Telegram.

The real bot runs against the local Bot API (``bot.localapi``) and a web page shows the chats of
several people side by side (``web.Playground``, ``static/``); ``run.serve`` wires it together.
"""
