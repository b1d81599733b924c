"""Input formats (Bot API updates, Desktop exports, web preview HTML) parsed into posts.

- ``result``: ``ParseResult``, ``Rejected`` (one item set aside, with why) and ``FormatError``.
- ``botapi``: ``parse_update``/``parse_updates``/``parse_update_lines`` and ``merge_albums``.
- ``export``: ``parse_export`` for single-chat and full-account Telegram Desktop exports.
- ``preview``: ``parse_preview`` for one ``t.me/s/<channel>`` page (posts plus paging cursors).
- ``detect``: ``parse_bytes``/``parse_file``, which tell the three apart.

Submodules are not imported here, so importing ``result`` does not load the HTML parser.
"""
