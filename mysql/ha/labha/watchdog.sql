-- The writer's dead-man switch, inside the server itself: it fences this
-- node when the lease deadline that db-ha keeps in ha.lease has passed,
-- even while every helper process in the container is frozen.
--
-- An event starts ha.watch() every second; the one instance that gets the
-- lock loops for ever, checking every 50 ms, so the check runs in a
-- thread of mariadbd with no process outside it. Fencing: kill the
-- sessions that may commit (the app's and the heartbeat writer's: a
-- commit waiting for a semi-sync acknowledgement holds SET GLOBAL
-- read_only up), then turn read_only on, retrying until it takes.
-- Installed by db-ha at start (binary logging off: it is per node);
-- statements are separated by lines holding only "-- ;;".
SET SESSION sql_log_bin = 0
-- ;;
CREATE OR REPLACE DEFINER = 'root'@'localhost' PROCEDURE ha.watch()
BEGIN
  DECLARE done INT DEFAULT 0;
  DECLARE sid BIGINT;
  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;
  IF GET_LOCK('ha.watchdog', 0) = 1 THEN
    SET SESSION sql_log_bin = 0;
    SET SESSION lock_wait_timeout = 1;
    LOOP
      IF @@global.read_only = 0
         AND IFNULL((SELECT deadline FROM ha.lease WHERE id = 1), '1970-01-01') < UTC_TIMESTAMP(6) THEN
        BEGIN
          DECLARE victims CURSOR FOR
            SELECT id FROM information_schema.processlist WHERE user IN ('lab_app', 'lab_beat');
          DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
          SET done = 0;
          OPEN victims;
          each_victim: LOOP
            FETCH victims INTO sid;
            IF done THEN LEAVE each_victim; END IF;
            KILL CONNECTION sid;
          END LOOP;
          CLOSE victims;
        END;
        SET GLOBAL read_only = ON;
        INSERT INTO ha.fenced (at, why) VALUES (UTC_TIMESTAMP(6), 'lease deadline passed (watchdog)');
      END IF;
      DO SLEEP(0.05);
    END LOOP;
  END IF;
END
-- ;;
CREATE OR REPLACE DEFINER = 'root'@'localhost' EVENT ha.watchdog
  ON SCHEDULE EVERY 1 SECOND ON COMPLETION PRESERVE ENABLE
  COMMENT 'the writer dead-man switch (db-ha)'
  DO CALL ha.watch()
