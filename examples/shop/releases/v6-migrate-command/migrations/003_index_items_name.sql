-- Expand only: an index, nothing a release reads or writes changes.
CREATE INDEX items_name ON items (name);
