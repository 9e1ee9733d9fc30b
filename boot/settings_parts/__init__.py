"""The groups of settings ``boot/settings.py`` composes into its ``Base``.

Each module holds one mixin class of related settings (and the helpers only
they use); ``boot.settings.Base`` lists them all before ``Configuration``,
so django-configurations copies their attributes into ``Base`` and reads
their values from the environment exactly like ``Base``'s own. The
environments (``Dev``, ``Test``, ``Production``) and what every setting
group shares stay in ``boot/settings.py``.
"""
