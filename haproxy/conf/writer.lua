-- Choose the writer among the masters, on each db load balancer.
--
-- Both masters start read-only (mysql/conf/common.cnf). The write port
-- sends traffic to the master whose agent says it is writable (GET /write),
-- and this task keeps exactly one writable:
--   * no master is writable (first start, or the writer died) and one
--     answers: promote it (POST /promote), master1 first by preference.
--     The agent applies its relay log before turning read_only off, so
--     nothing acknowledged is lost (semi-sync put it there);
--   * both are writable (the old writer was frozen, not dead, and came
--     back): demote the one promoted earlier, so writes stay where they are.
-- A master that restarts comes back read-only, so writes never fail back on
-- their own: `make failback` demotes master2, and this task then promotes
-- master1 once it has applied everything. Both db LBs run this task on the
-- same health checks; each action is idempotent, so they agree.
local MASTERS = { "master1", "master2" }
local PERIOD_MS = 250

-- Send one request to a master's agent (port 9200); return status, body.
-- TIMEOUT_S bounds the whole exchange: a dead node must not stall the loop.
local function agent(server, request, timeout_s)
    local addr = server:get_addr():match("^([%d.]+):")
    if not addr then return nil end
    local sock = core.tcp()
    sock:settimeout(timeout_s or 1)
    if not sock:connect(addr, 9200) then return nil end
    sock:send(request .. " HTTP/1.0\r\n\r\n")
    local status_line = sock:receive("*l")
    local body = sock:receive("*a") or ""
    sock:close()
    local status = status_line and tonumber(status_line:match("^HTTP/%S+ (%d+)"))
    return status, body:match("\r\n\r\n(.*)$") or body
end

local function is_up(server)
    return server:get_stats()["status"]:sub(1, 2) == "UP"
end

-- Ask a master's agent directly: return read_only ("0"/"1") and promoted_at,
-- or nil when it does not answer.
local function state(server)
    local status, body = agent(server, "GET /status")
    if status ~= 200 then return nil, 0 end
    return body:match("read_only=(%d)"), tonumber(body:match("promoted_at=(%d+)")) or 0
end

core.register_task(function()
    core.msleep(2000)  -- let the first health checks come in
    while true do
        local write = core.backends["masters"].servers
        local alive = core.backends["masters_alive"].servers
        local writable, answering = {}, {}
        for _, name in ipairs(MASTERS) do
            if is_up(write[name]) then table.insert(writable, name) end
            if is_up(alive[name]) then table.insert(answering, name) end
        end
        local target = nil
        if #writable == 0 and #answering > 0 then
            -- The checks may lag behind (this LB just started, a promotion
            -- is in flight, or a master died since its last check): ask the
            -- agents themselves. Promote only if none says it is writable,
            -- and only one that answers now (a dead one would hang the call).
            local someone_writes, reachable = false, {}
            for _, name in ipairs(answering) do
                local ro = state(alive[name])
                if ro == "0" then someone_writes = true end
                if ro then table.insert(reachable, name) end
            end
            if not someone_writes then target = reachable[1] end
        end
        if target then
            -- Promotion may wait up to 10 s for the relay log (db-promote).
            local status, body = agent(alive[target], "POST /promote", 15)
            body = (body or ""):gsub("%s+$", "")
            -- Until the health checks see the promotion, this runs again:
            -- "already the writer" then is no news.
            if status ~= 200 or not body:find("already") then
                core.Info(string.format("writer: no writable master; promote %s: %s %s",
                    target, tostring(status), body))
            end
        elseif #writable == 2 then
            local _, at1 = state(alive[MASTERS[1]])
            local _, at2 = state(alive[MASTERS[2]])
            local older = at1 <= at2 and MASTERS[1] or MASTERS[2]
            local status = agent(alive[older], "POST /demote")
            core.Info(string.format("writer: both masters writable; demote %s (promoted earlier): %s",
                older, tostring(status)))
        end
        core.msleep(PERIOD_MS)
    end
end)
