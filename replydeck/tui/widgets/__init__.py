"""Small widgets of the inbox screen."""
