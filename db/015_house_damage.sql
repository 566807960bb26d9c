-- The worst house damage (房屋损毁: 无 / 轻微 / 严重 / 倒塌) a disaster in the
-- household's window left, as matching last saw it; NULL when no disaster
-- record says. The policy's house_damage_red decides which levels make a
-- household red, so a shadow run of a draft that changes the list judges
-- from the level, not from house_collapsed (严重 or 倒塌).
ALTER TABLE household_state ADD COLUMN IF NOT EXISTS house_damage text
    CHECK (house_damage IN ('无', '轻微', '严重', '倒塌'));
