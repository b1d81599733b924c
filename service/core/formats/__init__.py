"""Input formats (Bot API updates, Desktop exports, web preview HTML) parsed into posts.

- ``result``: ``ParseResult``, ``Rejected`` (one item set aside, with why) and ``FormatError``.
- ``botapi``: ``parse_update``/``classify_update``/``parse_updates``/``parse_update_lines``.
- ``albums``: ``merge_albums`` (Bot API) and the export's album heuristic: one post an album.
- ``content``: what a person reads in a message (``Content``) and the range checks.
- ``export``: ``parse_export`` for single-chat and full-account Telegram Desktop exports.
- ``preview``: ``parse_preview`` for one ``t.me/s/<channel>`` page (posts plus paging cursors).
- ``detect``: ``parse_bytes``/``parse_file``, which tell the three apart.

Submodules are not imported here, so importing ``result`` does not load the HTML parser.
"""
