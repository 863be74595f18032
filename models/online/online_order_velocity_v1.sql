{{ featurekit.online_table(ref('order_velocity', v=1)) }}
