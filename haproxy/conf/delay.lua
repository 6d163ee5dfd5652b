-- Latency injection for the chaos suite on kernels without netem (no
-- `tc ... netem`): every new connection through a backend that calls
-- lab_delay waits proc.lab_delay_ms, a variable set at run time with
--   set var proc.lab_delay_ms int(200)     (0 removes the delay)
core.register_action("lab_delay", { "tcp-req" }, function(txn)
    local ms = tonumber(txn:get_var("proc.lab_delay_ms")) or 0
    if ms > 0 then
        core.msleep(ms)
    end
end, 0)
