import redis

redis_url = "redis://localhost:6379"
conn = redis.Redis.from_url(redis_url)
