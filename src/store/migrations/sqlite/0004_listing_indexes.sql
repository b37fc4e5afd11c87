-- Listings that name periods, or ask only current revisions, read what they ask for instead of
-- every submission of the member (or of the store): ListSubmissions bounds period_start on both
-- sides (a period starts no later than it ends), so these ranges are tight.
CREATE INDEX submissions_by_member_period ON submissions (member, period_start);
CREATE INDEX submissions_current_by_member ON submissions (member, seq) WHERE is_current = 1;
CREATE INDEX submissions_current_by_member_period ON submissions (member, period_start) WHERE is_current = 1;
CREATE INDEX submissions_by_period ON submissions (period_start);
