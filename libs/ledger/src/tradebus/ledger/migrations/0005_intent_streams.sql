-- 0005: each user's intents are in a stream of their own (INTENTS_<user>), so a stream sequence
-- is unique only within its stream: a refusal is kept once per (stream, stream_seq). Rows of
-- the single INTENTS stream of earlier versions are marked as such.
ALTER TABLE rejected_intents ADD COLUMN stream text;
UPDATE rejected_intents SET stream = 'INTENTS' WHERE stream_seq IS NOT NULL;
ALTER TABLE rejected_intents DROP CONSTRAINT rejected_intents_stream_seq_key;
ALTER TABLE rejected_intents ADD CONSTRAINT rejected_intents_stream_seq_key UNIQUE (stream, stream_seq);
