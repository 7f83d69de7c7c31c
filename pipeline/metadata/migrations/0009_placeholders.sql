-- A photo's placeholder (JSON: thumbhash, color, aspect), recorded by its render before the
-- renditions are encoded; cleared by a new generation until that one's render records its own.
ALTER TABLE photos ADD COLUMN placeholder text;
