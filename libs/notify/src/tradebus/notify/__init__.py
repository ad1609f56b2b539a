"""tradebus notifications, the pure core of the notifier service.

* :mod:`.channels`: who hears about what -- the operators' Apprise URLs and each
  user's channels and mute options (notifications file, gateway API);
* :mod:`.events`: the bus events people hear about, as short human texts;
* :mod:`.alertmanager`: Alertmanager's webhook payload (version 4) as a text;
* :mod:`.outbox`: notices collected per recipient, floods sent as one digest;
* :mod:`.delivery`: delivery through Apprise, retried, without ever logging a URL.
"""
