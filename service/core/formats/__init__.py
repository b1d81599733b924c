"""Input formats (Bot API updates, Desktop exports, web preview HTML) parsed into posts."""
